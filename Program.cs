// BabyNames: a character-level language model that invents baby names, in one file.
//
// It reads a list of real names, trains a small neural network on them for about a second with
// plain SGD, then samples new names a letter at a time. The gradients come from reverse-mode
// automatic differentiation in the style of Conal Elliott's "The Simple Essence of Automatic
// Differentiation": every operation returns its value together with a backpropagator, a plain
// function that takes the gradient of the loss with respect to that value and pushes gradient into
// the operation's inputs. The chain rule is then one function calling the next: no tape, no graph.
// Two models are snapped together from the same bricks: a bag of embeddings, and an MLP that adds
// one brick, tanh (see "Model").
//
// The file reads top to bottom: autodiff, primitives, data, model, training, sampling, scoring,
// model files, a run from names to names, the report, the command line.
//
// Size letters, the same everywhere in the file:
//   B  examples in a batch               S  shards a batch is cut into (see Model)
//   K  letters of context a model sees   V  letters, the boundary included
//   D  embedding width                   H  hidden units of the MLP
//   n  rows a primitive is given: a shard's examples or fewer (or the V letters of the MLP's table)
//   C  the width of those rows: D, H or K·D, padded
//   R  rows of a weight matrix W;  G  groups of W's columns (see matmul)
//   A "p" rounds a size up to whole vectors of 16 floats (Vp, Dp, Hp, Rp); the padding stays zero.
//   Vr is V rounded up to 4, the rows of the output weights: matmul's backward takes 4 rows at a time.
//   Rt is R rounded up to 32, the width of matmul's Wᵀ: its forward takes 32 outputs at a time.

using System.Buffers;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace BabyNames;

/// <summary>Every limit the program puts on what it is given, in one place; README's "Errors and
/// limits" lists them.</summary>
internal static class Limits
{
    public const int MaxNameLength = 50;         // letters; also where sampling stops
    public const int MaxVocabulary = 256;        // distinct letters, the boundary included: an id fits in a byte
    public const int MaxNames = 5_000_000;
    public const long MaxFileBytes = 256L << 20; // a names file
    public const long MaxBufferBytes = 1L << 30; // all of a run's tables and step buffers
    public const int MaxBatchSize = 65_536, MaxContext = 16, MaxDim = 1024, MaxHidden = 1024, MaxThreads = 256;
    public const int MaxSamples = 100_000, MaxTopK = 100_000;
    public const double MaxSeconds = 3600, MinTemperature = 0.001, MaxTemperature = 100, MaxLearningRate = 1e6;
    public const long MaxSteps = 1_000_000_000;
}

/// <summary>A problem with what the user gave us: reported as one line, with this exit code.</summary>
internal sealed class UserError(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

// ================================================================================================
// Autodiff: a value and its backpropagator
// ================================================================================================

/// <summary>A value paired with its backpropagator. <c>Back(g)</c> takes g = dLoss/dValue and
/// pushes gradient into whatever the value was computed from.</summary>
/// <remarks>Two rules let every buffer be reused. A node's value is a buffer the model owns, which
/// the next forward pass through the same buffers overwrites (sampling and evaluation reuse the
/// training buffers), so it is read before then. A backpropagator overwrites the gradient buffers
/// of intermediate values, and adds into <see cref="Param.Grad"/>, where the gradients of every use
/// of a parameter meet.</remarks>
internal sealed class Node<T>(T value, Action<T> back)
{
    public T Value { get; } = value;
    public Action<T> Back { get; } = back;
}

/// <summary>A trainable (Rows, Cols) table and the gradient of the loss with respect to it: the
/// leaves of every computation, where backpropagation ends by adding into Grad. A replica shares
/// Data and owns its Grad, so that the shards of a batch (see Model) keep their gradients apart.</summary>
internal sealed class Param
{
    public int Rows { get; }
    public int Cols { get; }
    public float[] Data { get; }
    public float[] Grad { get; }

    public Param(int rows, int cols) : this(rows, cols, new float[checked(rows * cols)]) { }

    Param(int rows, int cols, float[] data)
    {
        // the kernels, Step and Collect run over whole vectors
        if (cols % Ops.Lanes != 0) throw new ArgumentException($"a Param's width must be a multiple of {Ops.Lanes}, got {cols}");
        (Rows, Cols, Data, Grad) = (rows, cols, data, new float[data.Length]);
    }

    public Param Replica() => new(Rows, Cols, Data);

    /// <summary>The table as a leaf node, for a primitive that takes a node: its backpropagator
    /// adds into Grad.</summary>
    public Node<float[]> AsNode() => new(Data, g => Ops.AddInto(Grad, g));

    /// <summary>One step of SGD with weight decay λ, Data ← (1 − lr·λ)·Data − lr·Grad: the step
    /// down the loss plus λ/2·|Data|². The gradient is zeroed in the same pass.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Step(float lr, float decay = 0)
    {
        var (rate, keep) = (Vector512.Create(lr), Vector512.Create(1 - lr * decay));
        fixed (float* data = Data, grad = Grad)
            for (int i = 0; i < Data.Length; i += Ops.Lanes)
            {
                (keep * Vector512.Load(data + i) - rate * Vector512.Load(grad + i)).Store(data + i);
                Vector512<float>.Zero.Store(grad + i);
            }
    }

    /// <summary>Grad = the sum of the replicas' gradients, in their order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Collect(float[][] replicaGrads)
    {
        fixed (float* grad = Grad)
            for (int i = 0; i < Grad.Length; i += Ops.Lanes)
            {
                var g = Vector512<float>.Zero;
                foreach (var replica in replicaGrads) // any number of them: read without pinning
                    g += Vector512.LoadUnsafe(ref MemoryMarshal.GetArrayDataReference(replica), (nuint)i);
                g.Store(grad + i);
            }
    }

    public void ZeroGrad() => Array.Clear(Grad);
}

// ================================================================================================
// Primitives: each computes its output and, right beside it, its backpropagator
// ================================================================================================
// A primitive checks the shapes it is given, runs its forward kernel, and returns the output with a
// closure that runs the backward kernel and then hands the input's gradient on. The kernels are
// static local functions over pinned pointers, so that the hot loops run on registers and plain
// pointer arithmetic, not on the closure's captured fields and bounds-checked indices; each has its
// plain formula above it. Every row is a whole number of 16-float vectors, padding included (it
// stays zero), so no kernel has a scalar tail. On a machine without AVX-512, Vector512 runs as two
// Vector256 halves: the same code is the fallback. Outputs, gradients and scratch are float[]
// buffers that the model owns and reuses (the rules are on Node).

internal static class Ops
{
    public const int Lanes = 16;        // floats in a Vector512
    // Block sizes of the kernels below, which are unrolled by hand for exactly these values:
    public const int RowBlock = 4;      // matmul forward: examples that share each load of Wᵀ
    public const int PairWidth = 2 * Lanes; // matmul forward: outputs that share each broadcast of h (Rt)
    public const int WeightBlock = 4;   // matmul backward: rows of W held in registers for a sweep
    public const int LogBlock = 64;     // softmax: examples whose sums share one log

    public static int RoundUp(int size, int multiple = Lanes) => (size + multiple - 1) / multiple * multiple;

    /// <summary>The floats matmul's Wᵀ takes for a W: (G·C,Rt).</summary>
    public static int TransposedSize(Param W) => W.Cols * RoundUp(W.Rows, PairWidth);

    // The kernels index their buffers without bounds checks, so each primitive checks the shapes
    // it is given (once per call) before it runs them.
    static void Require(bool shapesFit, string primitive)
    {
        if (!shapesFit) throw new ArgumentException($"{primitive}: the buffers do not have the shapes it needs");
    }

    // A plain loop, compiled fully at once: the framework's vectorized search starts out in
    // unoptimized code, hundreds of times slower, for the first tenths of a second of a run.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static bool AllBetween(ReadOnlySpan<int> values, int min, int max)
    {
        foreach (int v in values)
            if (v < min || v > max) return false;
        return true;
    }

    /// <summary>Rows of a table for each context: out[b,k] = table[k·stride + ids[b,k]], (n,K)
    /// letters → (n,K,C). Stride V gives every context position rows of its own; stride 0 shares
    /// one row per letter.</summary>
    public static Node<float[]> GatherRows(Param table, int[] ids, int n, int K, int stride, float[] output)
    {
        int C = table.Cols, lastId = table.Rows - 1 - (K - 1) * stride;
        Require(lastId >= 0 && ids.Length >= n * K && output.Length >= n * K * C
            && AllBetween(ids.AsSpan(0, n * K), 0, lastId), "GatherRows");
        Forward(table.Data, ids, n, K, stride, C, output);
        return new(output, g => Backward(g, ids, n, K, stride, C, table.Grad));

        // out[b,k] = table[k·stride + ids[b,k]]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Forward(float[] table, int[] ids, int n, int K, int stride, int C, float[] output)
        {
            fixed (float* t = table, o = output)
                for (int b = 0, i = 0; b < n; b++)
                    for (int k = 0; k < K; k++, i++)
                    {
                        float* row = t + (k * stride + ids[i]) * C;
                        for (int c = 0; c < C; c += Lanes) Vector512.Load(row + c).Store(o + i * C + c);
                    }
        }

        // grad[k·stride + ids[b,k]] += g[b,k]: a row used more than once receives the sum of its gradients
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Backward(float[] g, int[] ids, int n, int K, int stride, int C, float[] grad)
        {
            fixed (float* gp = g, t = grad)
                for (int b = 0, i = 0; b < n; b++)
                    for (int k = 0; k < K; k++, i++)
                    {
                        float* row = t + (k * stride + ids[i]) * C;
                        for (int c = 0; c < C; c += Lanes) (Vector512.Load(row + c) + Vector512.Load(gp + i * C + c)).Store(row + c);
                    }
        }
    }

    /// <summary>(n,K,C) → (n,C): the sum over the K context positions. The gradient flows back
    /// unchanged to every position.</summary>
    public static Node<float[]> SumOverK(Node<float[]> x, int n, int K, int C, float[] output, float[] gradX)
    {
        Require(C % Lanes == 0 && x.Value.Length >= n * K * C && gradX.Length >= n * K * C && output.Length >= n * C, "SumOverK");
        Forward(x.Value, n, K, C, output);
        return new(output, g =>
        {
            Backward(g, n, K, C, gradX);
            x.Back(gradX);
        });

        // out[b] = Σ_k x[b,k]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Forward(float[] x, int n, int K, int C, float[] output)
        {
            fixed (float* xp = x, o = output)
                for (int b = 0; b < n; b++)
                    for (int c = 0; c < C; c += Lanes)
                    {
                        float* column = xp + b * K * C + c;
                        var sum = Vector512.Load(column);
                        for (int k = 1; k < K; k++) sum += Vector512.Load(column + k * C);
                        sum.Store(o + b * C + c);
                    }
        }

        // gradX[b,k] = g[b]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Backward(float[] g, int n, int K, int C, float[] gradX)
        {
            fixed (float* gp = g, gx = gradX)
                for (int b = 0; b < n; b++)
                    for (int c = 0; c < C; c += Lanes)
                    {
                        var gb = Vector512.Load(gp + b * C + c);
                        for (int k = 0; k < K; k++) gb.Store(gx + (b * K + k) * C + c);
                    }
        }
    }

    /// <summary>y = tanh(x + bias) for the (n,C) rows of x; its backpropagator: dx = g·(1 − y²),
    /// and dbias += Σ_b dx. The bias is added here rather than in matmul, so that both forms of
    /// the MLP's first layer (see Model) end in the same brick.</summary>
    public static Node<float[]> Tanh(Node<float[]> x, Param bias, int n, float[] output, float[] gradX)
    {
        int C = bias.Cols;
        Require(bias.Rows == 1 && x.Value.Length >= n * C && output.Length >= n * C && gradX.Length >= n * C, "Tanh");
        Forward(x.Value, bias.Data, n, C, output);
        return new(output, g =>
        {
            Backward(g, output, n, C, gradX, bias.Grad);
            x.Back(gradX);
        });

        // y[b] = tanh(x[b] + bias)
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Forward(float[] x, float[] bias, int n, int C, float[] output)
        {
            fixed (float* xp = x, bp = bias, y = output)
                for (int b = 0; b < n; b++)
                    for (int c = 0; c < C; c += Lanes)
                        TanhOf(Vector512.Load(xp + b * C + c) + Vector512.Load(bp + c)).Store(y + b * C + c);
        }

        // dx[b] = g[b]·(1 − y[b]²),  dbias += Σ_b dx[b]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Backward(float[] g, float[] y, int n, int C, float[] gradX, float[] biasGrad)
        {
            fixed (float* gp = g, yp = y, dx = gradX, db = biasGrad)
                for (int c = 0; c < C; c += Lanes)
                {
                    var sum = Vector512.Load(db + c);
                    for (int b = 0; b < n; b++)
                    {
                        var yb = Vector512.Load(yp + b * C + c);
                        var gx = Vector512.Load(gp + b * C + c) * Vector512.FusedMultiplyAdd(-yb, yb, Vector512<float>.One);
                        gx.Store(dx + b * C + c);
                        sum += gx;
                    }
                    sum.Store(db + c);
                }
        }
    }

    /// <summary>h times W's transpose, plus a bias if there is one: out = h·Wᵀ + bias, (n,C) and
    /// (R,C) → (n,Rp). R is a multiple of WeightBlock; W's rows past the real ones are zero, and so
    /// are their outputs. With G groups, W (R,G·C) is cut into G column blocks W_k of width C, and
    /// h meets each: out[k·n + b] = h[b]·W_kᵀ, (G·n,Rp). That is how the MLP's table multiplies
    /// every letter by every context position's block of W1 at once.</summary>
    public static Node<float[]> MatMul(Node<float[]> h, Param W, Param? bias, int n, int groups,
        float[] wT, float[] output, float[] gradH)
    {
        int C = W.Cols / groups, Rp = RoundUp(W.Rows);
        Require(groups >= 1 && C * groups == W.Cols && C % Lanes == 0 && W.Rows % WeightBlock == 0
            && (bias is null || (bias.Rows == 1 && bias.Cols == Rp))
            && h.Value.Length >= n * C && gradH.Length >= n * C && wT.Length >= TransposedSize(W)
            && output.Length >= groups * n * Rp, "MatMul");
        Forward(h.Value, W, bias?.Data, n, groups, wT, output);
        return new(output, g =>
        {
            Backward(g, h.Value, W, bias?.Grad, n, groups, gradH);
            h.Back(gradH);
        });

        // out[k·n + b, j] = bias[j] + Σ_c h[b,c]·Wᵀ[k·C + c, j]
        // With Wᵀ (G·C,Rt) a vector of 16 outputs is a sum of broadcasts of h times rows of Wᵀ: no
        // horizontal sums. A block of RowBlock examples by PairWidth outputs keeps eight
        // independent chains of multiply-adds in registers, enough to keep the multiply-add units
        // busy, and each broadcast of h feeds two of them. Wᵀ's padding columns are zero, so an
        // odd last vector of outputs is computed as a pair too, and its second half dropped.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Forward(float[] h, Param W, float[]? bias, int n, int groups, float[] wT, float[] output)
        {
            int C = W.Cols / groups, Rp = RoundUp(W.Rows), Rt = RoundUp(W.Rows, PairWidth);
            fixed (float* hp = h, wp = W.Data, wt = wT, bp = bias, o = output)
            {
                for (int r = 0; r < Rt; r += Lanes)
                    for (int c = 0; c < W.Cols; c += Lanes)
                        TransposeBlock(wp + r * W.Cols + c, W.Cols, Math.Min(Lanes, W.Rows - r), wt + c * Rt + r, Rt);
                for (int k = 0; k < groups; k++)
                    for (int b = 0; b < n; b += RowBlock)
                    {
                        // A last block of fewer than RowBlock examples reads its last row again in
                        // place of the missing ones, so that every read stays inside h, and stores
                        // only its own rows.
                        int last = Math.Min(RowBlock - 1, n - 1 - b);
                        int r1 = Math.Min(1, last) * C, r2 = Math.Min(2, last) * C, r3 = last * C;
                        for (int j = 0; j < Rp; j += PairWidth)
                        {
                            bool pair = j + Lanes < Rp;
                            var a0 = bp is null ? Vector512<float>.Zero : Vector512.Load(bp + j);
                            var c0 = bp is null || !pair ? Vector512<float>.Zero : Vector512.Load(bp + j + Lanes);
                            var (a1, a2, a3, c1, c2, c3) = (a0, a0, a0, c0, c0, c0);
                            float* x = hp + b * C, column = wt + k * C * Rt + j;
                            for (int c = 0; c < C; c++, x++, column += Rt)
                            {
                                var (w, v) = (Vector512.Load(column), Vector512.Load(column + Lanes));
                                var x0 = Vector512.Create(x[0]);
                                a0 = Vector512.FusedMultiplyAdd(x0, w, a0);
                                c0 = Vector512.FusedMultiplyAdd(x0, v, c0);
                                var x1 = Vector512.Create(x[r1]);
                                a1 = Vector512.FusedMultiplyAdd(x1, w, a1);
                                c1 = Vector512.FusedMultiplyAdd(x1, v, c1);
                                var x2 = Vector512.Create(x[r2]);
                                a2 = Vector512.FusedMultiplyAdd(x2, w, a2);
                                c2 = Vector512.FusedMultiplyAdd(x2, v, c2);
                                var x3 = Vector512.Create(x[r3]);
                                a3 = Vector512.FusedMultiplyAdd(x3, w, a3);
                                c3 = Vector512.FusedMultiplyAdd(x3, v, c3);
                            }
                            Span<Vector512<float>> left = [a0, a1, a2, a3], right = [c0, c1, c2, c3];
                            float* row = o + (k * n + b) * Rp + j;
                            for (int i = 0; i <= last; i++, row += Rp)
                            {
                                left[i].Store(row);
                                if (pair) right[i].Store(row + Lanes);
                            }
                        }
                    }
            }
        }

        // dh[b,c] = Σ_k Σ_r g[k·n + b, r]·W[r, k·C + c],   dW[r, k·C + c] += Σ_b g[k·n + b, r]·h[b,c],
        // dbias[r] += Σ over every row of g[row, r].
        // One sweep over the batch per block of WeightBlock rows of W gives dh and dW: the block's
        // rows of W and their gradient sums stay in registers for the whole sweep, and each
        // broadcast g feeds both products.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Backward(float[] g, float[] h, Param W, float[]? biasGrad, int n, int groups, float[] gradH)
        {
            int C = W.Cols / groups, Rp = RoundUp(W.Rows), width = W.Cols;
            fixed (float* gp = g, hp = h, wp = W.Data, gw = W.Grad, bg = biasGrad, dh = gradH)
            {
                for (int column = 0; column < width; column += Lanes) // 16 columns of W, in group column / C
                {
                    int k = column / C, c = column % C;
                    for (int r = 0; r < W.Rows; r += WeightBlock)
                    {
                        float* wr = wp + r * width + column;
                        var (w0, w1, w2, w3) = (Vector512.Load(wr), Vector512.Load(wr + width), Vector512.Load(wr + 2 * width), Vector512.Load(wr + 3 * width));
                        var (a0, a1, a2, a3) = (Vector512<float>.Zero, Vector512<float>.Zero, Vector512<float>.Zero, Vector512<float>.Zero);
                        bool first = k == 0 && r == 0; // the first contribution to dh overwrites it
                        float* gb = gp + k * n * Rp + r, hb = hp + c, dhb = dh + c;
                        for (int b = 0; b < n; b++, gb += Rp, hb += C, dhb += C)
                        {
                            var x = Vector512.Load(hb);
                            var (g0, g1, g2, g3) = (Vector512.Create(gb[0]), Vector512.Create(gb[1]), Vector512.Create(gb[2]), Vector512.Create(gb[3]));
                            a0 = Vector512.FusedMultiplyAdd(g0, x, a0);
                            a1 = Vector512.FusedMultiplyAdd(g1, x, a1);
                            a2 = Vector512.FusedMultiplyAdd(g2, x, a2);
                            a3 = Vector512.FusedMultiplyAdd(g3, x, a3);
                            // two chains of two, so that each store waits on two multiply-adds, not four
                            var sum = first ? Vector512<float>.Zero : Vector512.Load(dhb);
                            var even = Vector512.FusedMultiplyAdd(g2, w2, Vector512.FusedMultiplyAdd(g0, w0, sum));
                            var odd = Vector512.FusedMultiplyAdd(g3, w3, g1 * w1);
                            (even + odd).Store(dhb);
                        }
                        float* gwr = gw + r * width + column;
                        (Vector512.Load(gwr) + a0).Store(gwr);
                        (Vector512.Load(gwr + width) + a1).Store(gwr + width);
                        (Vector512.Load(gwr + 2 * width) + a2).Store(gwr + 2 * width);
                        (Vector512.Load(gwr + 3 * width) + a3).Store(gwr + 3 * width);
                    }
                }
                if (bg is not null)
                    for (int j = 0; j < Rp; j += Lanes)
                    {
                        var sum = Vector512.Load(bg + j);
                        for (int row = 0; row < groups * n; row++) sum += Vector512.Load(gp + row * Rp + j);
                        sum.Store(bg + j);
                    }
            }
        }
    }

    /// <summary>Mean over n examples of −log softmax(logits[b])[targets[b]], over the first V
    /// columns of each (n,Vp) row. Subtracting each row's maximum keeps exp from overflowing.</summary>
    public static Node<float> SoftmaxCrossEntropy(Node<float[]> logits, int[] targets, int n, int V,
        float[] probs, float[] gradLogits)
    {
        int Vp = RoundUp(V);
        Require(n > 0 && logits.Value.Length >= n * Vp && probs.Length >= n * Vp && gradLogits.Length >= n * Vp
            && targets.Length >= n && AllBetween(targets.AsSpan(0, n), 0, V - 1), "SoftmaxCrossEntropy");
        float loss = Forward(logits.Value, targets, n, V, probs);
        return new(loss, g =>
        {
            Backward(g, probs, targets, n, V, gradLogits);
            logits.Back(gradLogits);
        });

        // probs[b] = softmax(logits[b]), zero in the padding columns; loss = mean of −log probs[b, target].
        // Σ_b log z_b is taken as log Π z_b, one log per LogBlock examples instead of one each:
        // with the maximum subtracted every z_b is between 1 and V ≤ Limits.MaxVocabulary = 2^8,
        // so a product of LogBlock = 64 of them is at most 2^512, well inside a double.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static float Forward(float[] logits, int[] targets, int n, int V, float[] probs)
        {
            double total = 0;
            for (int start = 0; start < n; start += LogBlock)
                total += Rows(logits, targets, start, Math.Min(n, start + LogBlock), V, probs);
            return (float)(total / n);
        }

        // the summed loss of rows [from, to)
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe double Rows(float[] logits, int[] targets, int from, int to, int V, float[] probs)
        {
            int Vp = RoundUp(V);
            var lastReal = Vector512.LessThan(Vector512<int>.Indices + Vector512.Create(Vp - Lanes), Vector512.Create(V)).AsSingle();
            var negativeInfinity = Vector512.Create(float.NegativeInfinity);
            double sums = 1, targetLogits = 0;
            // Three passes over the rows: maxima, then exps and their sums, then the division. Each
            // row's softmax is one long chain of dependent steps; pass by pass, the chains of
            // different rows are independent and the processor runs them side by side.
            float* maxima = stackalloc float[to - from], totals = stackalloc float[to - from];
            fixed (float* lp = logits, pp = probs)
            {
                for (int b = from; b < to; b++)
                {
                    float* row = lp + b * Vp;
                    var max = negativeInfinity;
                    for (int j = 0; j < Vp; j += Lanes)
                        max = Vector512.MaxNative(max, Vector512.ConditionalSelect(Real(j), Vector512.Load(row + j), negativeInfinity));
                    maxima[b - from] = HorizontalMax(max);
                }
                for (int b = from; b < to; b++)
                {
                    float* row = lp + b * Vp, p = pp + b * Vp;
                    var m = Vector512.Create(maxima[b - from]);
                    var z = Vector512<float>.Zero;
                    for (int j = 0; j < Vp; j += Lanes)
                    {
                        var e = Exp(Vector512.Load(row + j) - m) & Real(j);
                        e.Store(p + j);
                        z += e;
                    }
                    totals[b - from] = HorizontalSum(z);
                }
                for (int b = from; b < to; b++)
                {
                    float* p = pp + b * Vp;
                    float sum = totals[b - from];
                    var inverse = Vector512.Create(1f / sum);
                    for (int j = 0; j < Vp; j += Lanes) (Vector512.Load(p + j) * inverse).Store(p + j);
                    targetLogits += lp[b * Vp + targets[b]] - maxima[b - from];
                    sums *= sum;
                }
            }
            return Math.Log(sums) - targetLogits;

            // lanes at or past column V are padding
            Vector512<float> Real(int j) => j + Lanes <= V ? Vector512<float>.AllBitsSet : lastReal;
        }

        // dlogits[b] = g·(probs[b] − onehot(targets[b])) / n
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Backward(float g, float[] probs, int[] targets, int n, int V, float[] gradLogits)
        {
            int Vp = RoundUp(V);
            var scale = Vector512.Create(g / n);
            fixed (float* pp = probs, gl = gradLogits)
                for (int b = 0; b < n; b++)
                {
                    for (int j = 0; j < Vp; j += Lanes) (Vector512.Load(pp + b * Vp + j) * scale).Store(gl + b * Vp + j);
                    gl[b * Vp + targets[b]] -= g / n;
                }
        }
    }

    /// <summary>sum += g, elementwise: how a leaf takes its gradient.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void AddInto(float[] sum, float[] g)
    {
        Require(g.Length == sum.Length && sum.Length % Lanes == 0, "AddInto");
        fixed (float* s = sum, gp = g)
            for (int i = 0; i < sum.Length; i += Lanes) (Vector512.Load(s + i) + Vector512.Load(gp + i)).Store(s + i);
    }

    /// <summary>Writes the transpose of a 16×16 block (rows of `stride` floats, the first `rows`
    /// of them real, the rest read as zero) to dst (rows of `dstStride` floats).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    internal static unsafe void TransposeBlock(float* src, int stride, int rows, float* dst, int dstStride)
    {
        if (!Avx512F.IsSupported)
        {
            for (int i = 0; i < Lanes; i++)
                for (int j = 0; j < Lanes; j++)
                    dst[j * dstStride + i] = i < rows ? src[i * stride + j] : 0;
            return;
        }
        // With AVX-512, 64 shuffles in four rounds: pairs of rows are interleaved as floats, then
        // pairs of those as doubles, so that each 128-bit lane holds one column of four rows;
        // two rounds of 128-bit lane shuffles then put the four lanes of each column together.
        var r = stackalloc Vector512<float>[Lanes];
        var t = stackalloc Vector512<float>[Lanes];
        for (int i = 0; i < Lanes; i++) r[i] = i < rows ? Vector512.Load(src + i * stride) : default;
        for (int i = 0; i < Lanes; i += 2)
        {
            t[i] = Avx512F.UnpackLow(r[i], r[i + 1]);
            t[i + 1] = Avx512F.UnpackHigh(r[i], r[i + 1]);
        }
        for (int i = 0; i < Lanes; i += 4)
        {
            // r[i + m] now holds, in 128-bit lane L, column 4L + m of rows i..i+3
            r[i] = Avx512F.UnpackLow(t[i].AsDouble(), t[i + 2].AsDouble()).AsSingle();
            r[i + 1] = Avx512F.UnpackHigh(t[i].AsDouble(), t[i + 2].AsDouble()).AsSingle();
            r[i + 2] = Avx512F.UnpackLow(t[i + 1].AsDouble(), t[i + 3].AsDouble()).AsSingle();
            r[i + 3] = Avx512F.UnpackHigh(t[i + 1].AsDouble(), t[i + 3].AsDouble()).AsSingle();
        }
        for (int m = 0; m < 4; m++)
        {
            const byte even = 0b10_00_10_00, odd = 0b11_01_11_01; // lanes 0,2 or 1,3 of each source
            var lanes02Low = Avx512F.Shuffle4x128(r[m], r[4 + m], even);
            var lanes13Low = Avx512F.Shuffle4x128(r[m], r[4 + m], odd);
            var lanes02High = Avx512F.Shuffle4x128(r[8 + m], r[12 + m], even);
            var lanes13High = Avx512F.Shuffle4x128(r[8 + m], r[12 + m], odd);
            Avx512F.Shuffle4x128(lanes02Low, lanes02High, even).Store(dst + m * dstStride);
            Avx512F.Shuffle4x128(lanes13Low, lanes13High, even).Store(dst + (4 + m) * dstStride);
            Avx512F.Shuffle4x128(lanes02Low, lanes02High, odd).Store(dst + (8 + m) * dstStride);
            Avx512F.Shuffle4x128(lanes13Low, lanes13High, odd).Store(dst + (12 + m) * dstStride);
        }
    }

    static float HorizontalMax(Vector512<float> v)
    {
        var half = Vector256.MaxNative(v.GetLower(), v.GetUpper());
        var quarter = Vector128.MaxNative(half.GetLower(), half.GetUpper());
        quarter = Vector128.MaxNative(quarter, Vector128.Shuffle(quarter, Vector128.Create(2, 3, 0, 1)));
        quarter = Vector128.MaxNative(quarter, Vector128.Shuffle(quarter, Vector128.Create(1, 0, 3, 2)));
        return quarter.ToScalar();
    }

    static float HorizontalSum(Vector512<float> v)
    {
        var half = v.GetLower() + v.GetUpper();
        var quarter = half.GetLower() + half.GetUpper();
        quarter += Vector128.Shuffle(quarter, Vector128.Create(2, 3, 0, 1));
        quarter += Vector128.Shuffle(quarter, Vector128.Create(1, 0, 3, 2));
        return quarter.ToScalar();
    }

    /// <summary>e^x for x ≤ 0, to about 1e-7 relative: e^x = 2^n · e^r with n = round(x/ln 2) and
    /// |r| ≤ ln(2)/2, where a degree-7 Taylor polynomial in r is exact to float precision.</summary>
    /// <remarks>Not Vector512.Exp: measured here (.NET 10 on AVX-512), it takes 40 to 75 ns a vector
    /// against this one's 2.7, and its worst relative error is 1.4e-7 against 7e-8.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Exp(Vector512<float> x)
    {
        x = Vector512.Max(x, Vector512.Create(-87f)); // keeps 2^n normal; e^-87 is 0 to a softmax
        // Adding 1.5·2^23 rounds x/ln2 to a whole number n and leaves n + 127, the exponent bits
        // of 2^n, in the low bits of t.
        var magic = Vector512.Create(12582912f + 127f);
        var t = Vector512.FusedMultiplyAdd(x, Vector512.Create(1.44269504f), magic);
        var n = t - magic;
        // ln 2 split in two, so that x − n·ln2 loses nothing to rounding (Cody and Waite)
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.Create(1f / 5040);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 720));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 120));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 24));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 6));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.5f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        return p * Vector512.ShiftLeft(t.AsInt32(), 23).AsSingle();
    }

    /// <summary>tanh x = sign(x)·(1 − e)/(1 + e) with e = e^(−2|x|): Exp is only ever given
    /// x ≤ 0, so nothing overflows; about 1e-7 absolute.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> TanhOf(Vector512<float> x)
    {
        var e = Exp(Vector512.Create(-2f) * Vector512.Abs(x));
        return Vector512.CopySign((Vector512<float>.One - e) / (Vector512<float>.One + e), x);
    }
}

// ================================================================================================
// Data: names, their letters, and (context → next letter) examples
// ================================================================================================

/// <summary>The letters that occur in the names, plus one boundary token (id 0) that stands
/// before a name's first letter and after its last.</summary>
internal sealed class Vocabulary
{
    public const int Boundary = 0;
    // code points, rather than Runes: the framework comes with the int collections compiled,
    // which saves start-up time
    readonly int[] symbols;             // id → code point
    readonly string[] shown;            // id → the letter as text; the boundary as '.'
    readonly Dictionary<int, int> ids;  // code point → id

    public Vocabulary(IEnumerable<string> names)
    {
        var seen = new HashSet<int>();
        foreach (var name in names) foreach (var r in name.EnumerateRunes()) seen.Add(r.Value);
        int[] letters = [.. seen];
        Array.Sort(letters);
        symbols = ['.', .. letters];
        shown = [.. symbols.Select(c => new Rune(c).ToString())];
        ids = new Dictionary<int, int>(symbols.Length);
        for (int i = 1; i < symbols.Length; i++) ids[symbols[i]] = i;
    }

    public Vocabulary(IEnumerable<Rune> letters) : this(letters.Select(c => c.ToString())) { }

    public int Size => symbols.Length;

    /// <summary>The letters, in id order, the boundary left out.</summary>
    public IEnumerable<Rune> Letters => symbols.Skip(1).Select(c => new Rune(c));

    /// <summary>How a letter is shown: the boundary as '.' (the end of a name, where it comes last).</summary>
    public string Show(int id) => shown[id];

    /// <summary>Writes the ids of text's letters to `encoded` and returns how many there are,
    /// or −1 when a letter is not in the vocabulary (then `unknown` is that letter).</summary>
    public int TryEncode(string text, Span<int> encoded, out Rune unknown)
    {
        int length = 0;
        unknown = default;
        foreach (var r in text.EnumerateRunes())
        {
            if (!ids.TryGetValue(r.Value, out int id)) { unknown = r; return -1; }
            encoded[length++] = id;
        }
        return length;
    }

    public bool Knows(string text, out Rune unknown) => TryEncode(text, stackalloc int[text.Length], out unknown) >= 0;

    public int[] Encode(string text)
    {
        Span<int> buffer = stackalloc int[text.Length];
        int length = TryEncode(text, buffer, out var unknown);
        return length >= 0 ? buffer[..length].ToArray() : throw Unknown(unknown);
    }

    public static UserError Unknown(Rune letter) => new(1, $"'{letter}' is not a letter of the names");

    public string Decode(IEnumerable<int> encoded) => string.Concat(encoded.Select(Show));
}

internal static class Names
{
    /// <summary>A name's length in letters (Unicode code points, not UTF-16 units).</summary>
    public static int Length(string name)
    {
        int length = 0;
        foreach (var _ in name.EnumerateRunes()) length++;
        return length;
    }

    /// <summary>A name as it is learned and compared: trimmed, in Unicode normal form C, lower-case.</summary>
    public static string Normalize(ReadOnlySpan<char> text)
    {
        text = text.Trim();
        if (IsPlain(text)) return text.ToString();
        // İ has no lower-case form of its own in the invariant culture; Unicode's simple mapping is i
        return text.ToString().Normalize(NormalizationForm.FormC).ToLowerInvariant().Replace('İ', 'i');
    }

    // Lower-case text below U+0300, where the combining marks start, is already normalized: most
    // names are, and skip the slow trip to ICU. (Title case, as in 'ǅ', is not upper case.)
    static bool IsPlain(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
            if (c >= '\u0300' || char.GetUnicodeCategory(c) is UnicodeCategory.UppercaseLetter or UnicodeCategory.TitlecaseLetter)
                return false;
        return true;
    }

    /// <summary>Why a letter may not be in a name, or null if it may: control characters, spaces
    /// other than the plain one, and invisible formatting characters (zero-width spaces, direction
    /// overrides, byte-order marks) except the zero-width joiners that some scripts spell with.</summary>
    public static string? Problem(int codePoint)
    {
        if (!Rune.IsValid(codePoint)) return $"invalid code point {codePoint}";
        var r = new Rune(codePoint);
        if (Rune.IsControl(r)) return $"control character U+{codePoint:X4}";
        if (Rune.IsWhiteSpace(r) && codePoint != ' ') return $"space character U+{codePoint:X4}";
        if (Rune.GetUnicodeCategory(r) == UnicodeCategory.Format && codePoint is not (0x200C or 0x200D))
            return $"invisible formatting character U+{codePoint:X4}";
        return null;
    }

    /// <summary>One name a line, normalized; blank lines are skipped and duplicates dropped.
    /// Anything that is not a list of names is an error that says where.</summary>
    public static List<string> Parse(string text, string source)
    {
        var names = new List<string>();
        var seen = new HashSet<string>();
        int lineNumber = 0;
        foreach (var range in text.AsSpan().Split('\n'))
        {
            lineNumber++;
            var name = Normalize(WithoutMark(text.AsSpan(range)));
            if (name.Length == 0) continue;
            foreach (var r in name.EnumerateRunes())
                if (Problem(r.Value) is string problem)
                    throw new UserError(1, $"{source}, line {lineNumber}: {problem} in a name; give one name a line, in letters");
            int length = Length(name);
            if (length > Limits.MaxNameLength)
                throw new UserError(1, $"{source}, line {lineNumber}: a name of {length} letters; names may have at most {Limits.MaxNameLength}");
            if (seen.Add(name)) names.Add(name);
            if (names.Count > Limits.MaxNames)
                throw new UserError(1, $"{source} has more than {Limits.MaxNames:N0} names; that is the most BabyNames reads");
        }
        if (names.Count == 0) throw new UserError(1, $"{source} has no names: it is empty or has only blank lines");
        if (names.Count < 2) throw new UserError(1, $"{source} has only one distinct name; give at least 2 (some to train on, some to validate with)");
        return names;
    }

    /// <summary>The lines of a text, each without a byte-order mark at its start.</summary>
    public static IEnumerable<string> Lines(string text) => text.Split('\n').Select(line => WithoutMark(line).ToString());

    // a byte-order mark starts a file, or a line where two files were joined
    static ReadOnlySpan<char> WithoutMark(ReadOnlySpan<char> line) => line.TrimStart('\uFEFF');

    /// <summary>UTF-8 bytes as text, or an error that says what the bytes are instead.</summary>
    public static string Decode(ReadOnlySpan<byte> bytes, string source)
    {
        string? text;
        try { text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (DecoderFallbackException) { text = null; }
        // Names never hold control characters, and UTF-16 read as UTF-8 always does (or is not
        // UTF-8 at all): then see whether it reads as UTF-16.
        if ((text is null || text.Any(c => char.IsControl(c) && c is not ('\n' or '\r' or '\t'))) && IsUtf16(bytes))
            throw new UserError(1, $"{source} looks like UTF-16 text; save it as UTF-8");
        return text ?? throw new UserError(1, $"{source} is not UTF-8 text; give a UTF-8 text file with one name a line");
    }

    // The start of the bytes, read as UTF-16 (either byte order), is lines of letters.
    static bool IsUtf16(ReadOnlySpan<byte> bytes)
    {
        var head = bytes[..(Math.Min(bytes.Length, 4096) & ~1)];
        foreach (var encoding in (Encoding[])[Encoding.Unicode, Encoding.BigEndianUnicode])
        {
            string text = encoding.GetString(head).TrimStart('\uFEFF');
            if (text.Any(char.IsLetter) && text.All(c => char.IsLetterOrDigit(c) || char.IsWhiteSpace(c) || char.IsPunctuation(c)
                    || char.GetUnicodeCategory(c) is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark))
                return true;
        }
        return false;
    }

    /// <summary>The names of a file (`-` for standard input), or the bundled ones for null.</summary>
    public static List<string> Read(string? path) => Parse(ReadText(path, out var source), source);

    /// <summary>The text of a names file (`-` for standard input, null for the bundled one), and
    /// how to call it in a message.</summary>
    public static string ReadText(string? path, out string source)
    {
        source = path is null ? "the bundled names.txt" : path == "-" ? "standard input" : $"names file '{path}'";
        try
        {
            using var stream = path is null ? typeof(Names).Assembly.GetManifestResourceStream("names.txt")!
                : path == "-" ? Console.OpenStandardInput() : OpenFile(path, "names file", "give a text file with one name a line");
            return Decode(ReadCapped(stream, source), source);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserError(1, $"cannot read {source}: {e.Message}");
        }
    }

    /// <summary>Opens a file to read, or says in one line why it cannot be, and what to do.</summary>
    public static FileStream OpenFile(string path, string what, string advice)
    {
        if (Directory.Exists(path)) throw new UserError(1, $"{what} '{path}' is a folder; {advice}");
        if (!File.Exists(path))
        {
            string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
            throw new UserError(1, folder is not null && !Directory.Exists(folder)
                ? $"{what} '{path}': there is no folder '{folder}'; check the path"
                : $"{what} '{path}' does not exist; check the name, or give the full path");
        }
        return File.OpenRead(path);
    }

    // read with a cap as we go: a pipe or a device has no length to check first
    static byte[] ReadCapped(Stream stream, string source)
    {
        var bytes = new MemoryStream();
        var chunk = new byte[1 << 16];
        for (int read; (read = stream.Read(chunk)) > 0;)
        {
            if (bytes.Length + read > Limits.MaxFileBytes)
                throw new UserError(1, $"{source} is larger than {Limits.MaxFileBytes >> 20} MB, the most BabyNames reads");
            bytes.Write(chunk, 0, read);
        }
        return bytes.ToArray();
    }
}

/// <summary>The names split 90/10 into training and validation names, shuffled with the seed.</summary>
internal sealed record Corpus(Vocabulary Vocab, string[] Train, string[] Validation)
{
    public static Corpus Split(List<string> names, Rng rng)
    {
        var vocab = new Vocabulary(names);
        if (vocab.Size > Limits.MaxVocabulary)
            throw new UserError(1, $"the names use {vocab.Size - 1} different letters, and at most {Limits.MaxVocabulary - 1} are supported; give names in fewer alphabets");
        string[] shuffled = [.. names];
        rng.Shuffle(shuffled);
        int validation = Math.Max(1, shuffled.Length / 10);
        return new(vocab, shuffled[validation..], shuffled[..validation]);
    }
}

/// <summary>Every (K previous letters → next letter) pair in a list of names. A name of L
/// letters gives L+1 examples: its last one predicts the boundary.</summary>
internal sealed class Examples
{
    public int K { get; }
    public int Count { get; }
    // (Count,K+1): each example's K context letters, oldest first, then the letter that follows
    // them; one example is one short run of memory, however a batch picks them. An id fits in a
    // byte (Limits.MaxVocabulary).
    public byte[] Tokens { get; }

    Span<byte> Row(int i) => Tokens.AsSpan(i * (K + 1), K + 1);

    public ReadOnlySpan<byte> Context(int i) => Row(i)[..K];

    public int Next(int i) => Row(i)[K];

    public Examples(IReadOnlyList<string> names, Vocabulary vocab, int K)
    {
        this.K = K;
        long count = names.Sum(name => (long)Names.Length(name) + 1);
        if (count * (K + 1) > Array.MaxLength)
            throw new UserError(1, $"{count:N0} examples of context {K} do not fit in memory; use fewer names or a smaller --context");
        Count = (int)count;
        Tokens = new byte[Count * (K + 1)];
        Span<int> name = stackalloc int[Limits.MaxNameLength];
        int i = 0;
        foreach (var text in names)
        {
            int length = vocab.TryEncode(text, name, out var unknown);
            if (length < 0) throw Vocabulary.Unknown(unknown);
            for (int t = 0; t <= length; t++, i++)
            {
                var example = Row(i);
                for (int k = 0; k < K; k++)
                {
                    int position = t - K + k; // where in the name the k-th context letter is
                    example[k] = (byte)(position < 0 ? Vocabulary.Boundary : name[position]);
                }
                example[K] = (byte)(t < length ? name[t] : Vocabulary.Boundary);
            }
        }
    }
}

/// <summary>xorshift64*: small, fast and plenty random for drawing batches, weights and samples.</summary>
internal sealed class Rng
{
    ulong state;

    /// <summary>Different purposes get independent streams from the same seed.</summary>
    public Rng(long seed, int stream = 0)
    {
        ulong z = (ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)stream * 0xD1B54A32D192ED03UL + 0x632BE59BD9B4E019UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        state = (z ^ (z >> 31)) | 1;
    }

    public ulong Next() => Advance(ref state);

    /// <summary>A whole number in [0, n), by a multiply instead of a division.</summary>
    public int Below(int n) => Scale(Next(), n);

    /// <summary>Fills `into` with whole numbers in [0, n): the same numbers as as many calls of
    /// Below(n), with the state kept in a register.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Below(int n, Span<int> into)
    {
        ulong s = state;
        for (int i = 0; i < into.Length; i++) into[i] = Scale(Advance(ref s), n);
        state = s;
    }

    static ulong Advance(ref ulong s)
    {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1DUL;
    }

    static int Scale(ulong random, int n) => (int)Math.BigMul(random, (ulong)n, out _);

    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

    /// <summary>A standard normal number (Box–Muller).</summary>
    public double NextNormal() => Math.Sqrt(-2 * Math.Log(1 - NextDouble())) * Math.Cos(2 * Math.PI * NextDouble());

    public void Shuffle<T>(T[] items)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = Below(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}

// ================================================================================================
// Model: a bag of embeddings and an MLP, snapped together from the same bricks
// ================================================================================================
// Both models read the K letters before the one they predict. The bag looks up a row of an
// embedding table E for each of them, adds the rows up, and scores every possible next letter
// against the sum:
//
//     bag:  logits = matmul(sumOverK(gatherRows(E, context)), W, b)
//
// The MLP (Bengio et al. 2003, as in makemore) puts a layer of H tanh units between the embeddings
// and the scores. Its first layer multiplies the K embeddings, concatenated, by W1 (H,K·D). Cut W1
// into K column blocks W1_k (H,D), one per context position, and that product is a sum over the
// positions, Σ_k E[c_k]·W1_kᵀ: so it can be computed as a table. Once a step, every letter's row of
// E meets every block (T = matmul(E, W1) in K groups: K·V rows of H, row k·V + c = E[c]·W1_kᵀ), and
// each example then only gathers and adds up K rows of T, as the bag does with E:
//
//     mlp:  T = matmul(E, W1)                                   once a step, for every example
//           logits = matmul(tanh(sumOverK(gatherRows(T, context)) + b1), W, b)
//
// The table costs K·V·D·H multiply-adds a step instead of B·K·D·H, so it pays when a batch has more
// examples than there are letters (B > V; UsesTable). Otherwise the first layer is computed per
// example, the (n,K,D) gathered rows read as (n,K·D):
//
//     mlp, per example:  logits = matmul(tanh(matmul(gatherRows(E, context), W1) + b1), W, b)
//
// Both forms give the same numbers, up to float rounding. The bag gives each context position rows
// of its own (row k·V + c for letter c at position k), so that "emm" and "mem" differ; its
// order-blind variant, the original seed's model, shares one row per letter.
//
// A batch is cut into shards (S of them, by the batch size alone), each with its own examples, step
// buffers and gradients, so that the shards of a step can run side by side (see Training).

internal enum ModelKind { Bag = 0, Mlp = 1 } // as model files number them

/// <summary>Allocates a run's tables and step buffers, counting each against Limits.MaxBufferBytes
/// before it is allocated.</summary>
internal sealed class Buffers
{
    long bytes;

    public float[] Floats(long count)
    {
        Reserve(count * sizeof(float));
        return new float[count];
    }

    public int[] Ints(long count)
    {
        Reserve(count * sizeof(int));
        return new int[count];
    }

    public Param Param(long rows, int cols)
    {
        Reserve(2 * rows * cols * sizeof(float));
        return new((int)rows, cols);
    }

    public Param Replica(Param p)
    {
        Reserve((long)p.Grad.Length * sizeof(float));
        return p.Replica();
    }

    void Reserve(long more)
    {
        bytes += more;
        if (bytes > Limits.MaxBufferBytes)
            throw new UserError(2, $"these sizes need more than the {Limits.MaxBufferBytes >> 20} MB of buffers a run may have; use a smaller --batch-size, --context, --dim or --hidden, or fewer --threads");
    }
}

internal sealed class Model
{
    /// <summary>A batch is cut into shards of at least this many examples, and at most MaxShards
    /// of them, whatever the number of threads (README, "Every core", has the measurements).</summary>
    public const int ShardExamples = 128, MaxShards = 8;

    public ModelKind Kind { get; }
    public int V { get; }
    public int K { get; }
    public int D { get; }
    public int H { get; }               // 0 for the bag
    public bool Positional { get; }     // tells context positions apart: all but the bag's order-blind variant
    public int BatchSize { get; }
    public int Vp => Ops.RoundUp(V);
    public int Vr => Ops.RoundUp(V, Ops.WeightBlock);
    public int Dp => Ops.RoundUp(D);
    public int Hp => Ops.RoundUp(H);
    public bool UsesTable { get; }      // the MLP's first layer as a table (B > V), else per example
    public int ShardCount => Math.Clamp(BatchSize / ShardExamples, 1, MaxShards);

    public Param Embedding { get; }       // E: (K·V,Dp) with rows per position, else (V,Dp)
    public Param? HiddenWeights { get; }  // W1: (Hp,K·Dp), the MLP's first layer
    public Param? HiddenBias { get; }     // b1: (1,Hp)
    public Param OutputWeights { get; }   // W: (Vr,Dp) in the bag, (Vr,Hp) in the MLP
    public Param OutputBias { get; }      // b: (1,Vp)
    public Param[] Params { get; }        // what SGD trains, in model-file order
    public Param? Table { get; }          // T: (K·V,Hp), the MLP's table, made from E and W1, never trained itself
    public Shard[] Shards { get; } = [];

    // What matmul transposes, the model's own: W1ᵀ (K·Dp,Rt) and Wᵀ (Dp or Hp,Rt); and T's gradient
    // as the table's matmul passes it on to E, (V,Dp).
    readonly float[] hiddenT, outputT, gradTableE;
    bool tableIsCurrent;
    // the Params the shards write: T in place of E and W1 when there is a table
    internal Param[] Sharded { get; }
    internal Buffers Memory { get; }

    /// <summary>A model with weights drawn from rng (all zero without one, for a model file to
    /// fill), and its ShardCount shards.</summary>
    public Model(ModelKind kind, int V, int K, int D, int H, bool positional, int batchSize, Rng? rng)
        : this(kind, V, K, D, H, positional, batchSize, new Buffers())
    {
        if (rng is not null) Initialize(rng);
        Shards = [.. Enumerable.Range(0, ShardCount).Select(s => new Shard(this, s))];
    }

    // the tables of a model of these sizes, all zero, and no shards
    Model(ModelKind kind, int V, int K, int D, int H, bool positional, int batchSize, Buffers memory)
    {
        bool mlp = kind == ModelKind.Mlp;
        (Kind, this.V, this.K, this.D, this.H, Positional, BatchSize, Memory) = (kind, V, K, D, mlp ? H : 0, mlp || positional, batchSize, memory);
        UsesTable = mlp && batchSize > V;
        Embedding = memory.Param(mlp || !positional ? V : K * V, Dp);
        if (mlp)
        {
            HiddenWeights = memory.Param(Hp, K * Dp);
            HiddenBias = memory.Param(1, Hp);
        }
        OutputWeights = memory.Param(Vr, mlp ? Hp : Dp);
        OutputBias = memory.Param(1, Vp);
        Params = mlp ? [Embedding, HiddenWeights!, HiddenBias!, OutputWeights, OutputBias] : [Embedding, OutputWeights, OutputBias];
        if (UsesTable) Table = memory.Param(K * V, Hp);
        hiddenT = memory.Floats(mlp ? Ops.TransposedSize(HiddenWeights!) : 0);
        outputT = memory.Floats(Ops.TransposedSize(OutputWeights));
        gradTableE = memory.Floats(UsesTable ? V * Dp : 0);
        Sharded = !mlp ? [Embedding, OutputWeights, OutputBias]
            : UsesTable ? [Table!, HiddenBias!, OutputWeights, OutputBias] : [Embedding, HiddenWeights!, HiddenBias!, OutputWeights, OutputBias];
    }

    /// <summary>A model of the same sizes with a copy of the weights and no shards, its buffers
    /// counted with this one's: what every further thread of a training run trains (see Training).</summary>
    public Model Clone()
    {
        var copy = new Model(Kind, V, K, D, H, Positional, BatchSize, Memory);
        copy.LoadWeights([.. Params.Select(p => p.Data)]);
        return copy;
    }

    void Initialize(Rng rng)
    {
        void Fill(Param p, int rows, int cols, Func<double> draw)
        {
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++) p.Data[r * p.Cols + c] = (float)draw();
        }
        if (Kind == ModelKind.Bag)
        {
            // uniform in [−0.5, 0.5): the seed's choice
            Fill(Embedding, Embedding.Rows, D, () => rng.NextDouble() - 0.5);
            Fill(OutputWeights, V, D, () => rng.NextDouble() - 0.5);
            return;
        }
        // The embeddings start as N(0,1), so each unit's input x·W1ᵀ (K·D terms) has a standard
        // deviation of 5/3 with W1 ~ N(0,1)·(5/3)/√(K·D): the gain that makes up for how much tanh
        // shrinks what goes through it (as in makemore), so that the hidden layer starts neither
        // flat nor all ±1. A small output layer makes the first predictions nearly uniform, so that
        // the first loss is about ln V rather than a confident mistake.
        Fill(Embedding, V, D, rng.NextNormal);
        double scale = 5.0 / 3 / Math.Sqrt(K * D);
        for (int h = 0; h < H; h++)
            for (int k = 0; k < K; k++)
                for (int d = 0; d < D; d++) HiddenWeights!.Data[h * HiddenWeights.Cols + k * Dp + d] = (float)(rng.NextNormal() * scale);
        Fill(HiddenBias!, 1, H, () => rng.NextNormal() * 0.01);
        Fill(OutputWeights, V, H, () => rng.NextNormal() * 0.01);
    }

    /// <summary>Scores for the next letter of a shard's first n examples, (n,Vp), the first V of
    /// each row real: the model's three compositions, as the section's header writes them.</summary>
    public Node<float[]> Logits(Shard s, int n)
    {
        if (Kind == ModelKind.Bag)
        {
            var rows = Ops.GatherRows(s.Embedding!, s.Contexts, n, K, Positional ? V : 0, s.Gathered);                // (n,K,Dp)
            var context = Ops.SumOverK(rows, n, K, Dp, s.Features, s.GradGathered);                                // (n,Dp)
            return Ops.MatMul(context, s.OutputWeights, s.OutputBias, n, 1, outputT, s.Logits, s.GradFeatures);    // (n,Vp)
        }
        Node<float[]> firstLayer;
        if (UsesTable)
        {
            if (!tableIsCurrent) MakeTable(); // the weights changed since T was made
            var rows = Ops.GatherRows(s.Table!, s.Contexts, n, K, V, s.Gathered);                                 // (n,K,Hp)
            firstLayer = Ops.SumOverK(rows, n, K, Hp, s.PreActivation, s.GradGathered);                           // (n,Hp)
        }
        else
        {
            var x = Ops.GatherRows(s.Embedding!, s.Contexts, n, K, 0, s.Gathered);                                // (n,K·Dp)
            firstLayer = Ops.MatMul(x, s.HiddenWeights!, null, n, 1, hiddenT, s.PreActivation, s.GradGathered);  // (n,Hp)
        }
        var hidden = Ops.Tanh(firstLayer, s.HiddenBias!, n, s.Features, s.GradPreActivation);                     // (n,Hp)
        return Ops.MatMul(hidden, s.OutputWeights, s.OutputBias, n, 1, outputT, s.Logits, s.GradFeatures);        // (n,Vp)
    }

    public Node<float> Loss(Shard s, int n) => Ops.SoftmaxCrossEntropy(Logits(s, n), s.Targets, n, V, s.Probs, s.GradLogits);

    /// <summary>Every example of a set through a shard, a shard's worth at a time, forward only:
    /// `each` hears the shard, where its chunk starts in the set, the chunk's size and its mean
    /// loss, while the shard's buffers (its Probs, say) still hold the chunk's. With several
    /// threads, each takes every so many chunks on a copy of the model, and `each` is called
    /// from all of them, for different chunks.</summary>
    public void ForwardAll(Examples set, Action<Shard, int, int, float> each, int threads = 1)
    {
        int chunk = Shards[0].Count, chunks = (set.Count + chunk - 1) / chunk;
        using var crew = new Crew(Math.Min(threads, chunks));
        Model[] copies = [this, .. Enumerable.Range(1, crew.Size - 1).Select(_ => Clone())];
        Shard[] shards = [Shards[0], .. copies.Skip(1).Select(copy => new Shard(copy, 0))];
        crew.Run(member =>
        {
            var (model, shard, picks) = (copies[member], shards[member], new int[chunk]); // picks: (n)
            for (int c = member; c < chunks; c += crew.Size)
            {
                int start = c * chunk, n = Math.Min(chunk, set.Count - start);
                for (int b = 0; b < n; b++) picks[b] = start + b;
                shard.Load(set, picks.AsSpan(0, n));
                each(shard, start, n, model.Loss(shard, n).Value);
            }
        });
    }

    /// <summary>Makes the MLP's table for the current E and W1: T = matmul(E, W1) in K groups,
    /// (K·V,Hp), whose backpropagator takes T's gradient on to E and W1. Null without a table.</summary>
    public Node<float[]>? MakeTable()
    {
        if (Table is null) return null;
        tableIsCurrent = true;
        return Ops.MatMul(Embedding.AsNode(), HiddenWeights!, null, V, K, hiddenT, Table.Data, gradTableE);
    }

    /// <summary>Each Param the shards write gets the sum of the shards' gradients, added in shard
    /// order: gradients[i] holds every shard's gradient of Sharded[i] (Shard.Gradients). Then SGD
    /// may follow, except for E and W1 when the MLP has a table: T's gradient reaches them only
    /// through BackTable.</summary>
    public void Collect(float[][][] gradients)
    {
        if (ShardCount == 1) return; // the one shard wrote into the Params themselves
        for (int i = 0; i < Sharded.Length; i++) Sharded[i].Collect(gradients[i]);
    }

    /// <summary>T's gradient, from the shards, back through the table's matmul into E and W1.</summary>
    public void BackTable(Node<float[]> tableNode)
    {
        tableNode.Back(Table!.Grad);
        Table.ZeroGrad();
    }

    /// <summary>SGD with weight decay on every Param, its gradient zeroed in the same pass.</summary>
    public void Step(float lr, float decay = 0)
    {
        foreach (var p in Params) p.Step(lr, decay);
        tableIsCurrent = false;
    }

    /// <summary>Copies the trained tables into `into` (shaped like Params), or back from it.</summary>
    public void SaveWeights(float[][] into)
    {
        for (int i = 0; i < Params.Length; i++) Params[i].Data.CopyTo(into[i], 0);
    }

    public void LoadWeights(float[][] from)
    {
        for (int i = 0; i < Params.Length; i++) from[i].CopyTo(Params[i].Data, 0);
        tableIsCurrent = false;
    }

    /// <summary>Multiply-adds of one training example in the matmuls, forward and backward (three
    /// products each), at the real sizes; the table's, made once a step on each of `threads`
    /// threads (every thread trains a copy of the model), shared by the batch.</summary>
    public double MultiplyAddsPerExample(int threads = 1) => Kind == ModelKind.Bag ? 3.0 * D * V
        : UsesTable ? 3.0 * ((double)K * V * D * H * threads / BatchSize + H * V)
        : 3.0 * ((double)K * D * H + H * V);
}

/// <summary>One slice of a batch, with everything its forward and backward passes write: its
/// examples, its step buffers, and its gradients (replicas of the Params it writes, which share
/// their Data; or the Params themselves, when a batch is a single shard). Its Params go by the
/// model's names; a shape's n is at most Count.</summary>
internal sealed class Shard
{
    public int Offset { get; }          // where in the batch its examples start
    public int Count { get; }           // how many it holds
    public int K { get; }
    public int[] Contexts { get; }      // (n,K) letter ids, oldest first
    public int[] Targets { get; }       // (n)
    public Param[] Own { get; }         // its version of each of the model's Sharded
    public Param? Embedding { get; }
    public Param? HiddenWeights { get; }
    public Param? HiddenBias { get; }
    public Param? Table { get; }
    public Param OutputWeights { get; }
    public Param OutputBias { get; }
    public readonly float[] Gathered, GradGathered;           // (n,K,Dp), or (n,K,Hp) from the MLP's table
    public readonly float[] PreActivation, GradPreActivation; // (n,Hp): the MLP's first layer before tanh
    public readonly float[] Features, GradFeatures;           // (n,Dp) or (n,Hp): what the output layer reads
    public readonly float[] Logits, Probs, GradLogits;        // (n,Vp)

    /// <summary>Shard `index` of the model's ShardCount: its slice of the batch, its buffers, and,
    /// when there are several shards, replicas of the Params it writes.</summary>
    public Shard(Model m, int index)
    {
        int S = m.ShardCount, start = m.BatchSize * index / S, end = m.BatchSize * (index + 1) / S;
        (Offset, Count, K) = (start, end - start, m.K);
        var memory = m.Memory;
        Own = S > 1 ? [.. m.Sharded.Select(memory.Replica)] : m.Sharded;
        Param? Mine(Param? p)
        {
            int i = p is null ? -1 : Array.IndexOf(m.Sharded, p);
            return i < 0 ? null : Own[i];
        }
        (Embedding, HiddenWeights, HiddenBias, Table) = (Mine(m.Embedding), Mine(m.HiddenWeights), Mine(m.HiddenBias), Mine(m.Table));
        (OutputWeights, OutputBias) = (Mine(m.OutputWeights)!, Mine(m.OutputBias)!);
        int gatheredWidth = m.UsesTable ? m.Hp : m.Dp, featureWidth = m.OutputWeights.Cols;
        Contexts = memory.Ints((long)Count * K);
        Targets = memory.Ints(Count);
        Gathered = memory.Floats((long)Count * K * gatheredWidth);
        GradGathered = memory.Floats((long)Count * K * gatheredWidth);
        PreActivation = memory.Floats((long)Count * m.Hp);
        GradPreActivation = memory.Floats((long)Count * m.Hp);
        Features = memory.Floats((long)Count * featureWidth);
        GradFeatures = memory.Floats((long)Count * featureWidth);
        Logits = memory.Floats((long)Count * m.Vp);
        Probs = memory.Floats((long)Count * m.Vp);
        GradLogits = memory.Floats((long)Count * m.Vp);
    }

    /// <summary>The shards' gradients, by Param (as Model.Sharded lists them), in shard order.</summary>
    public static float[][][] Gradients(Shard[] shards) =>
        [.. shards[0].Own.Select((_, i) => shards.Select(s => s.Own[i].Grad).ToArray())];

    /// <summary>Puts examples picks[0..) of a set into the shard's first slots.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Load(Examples set, ReadOnlySpan<int> picks)
    {
        if (set.K != K || picks.Length > Count) throw new ArgumentException("Shard.Load: examples of another context length, or too many");
        for (int b = 0; b < picks.Length; b++)
        {
            var context = set.Context(picks[b]);
            for (int k = 0; k < K; k++) Contexts[b * K + k] = context[k];
            Targets[b] = set.Next(picks[b]);
        }
    }

    /// <summary>Puts a context (K letter ids, oldest first) into slot 0.</summary>
    public void SetContext(ReadOnlySpan<int> context) => context[..K].CopyTo(Contexts);
}

// ================================================================================================
// Training
// ================================================================================================
// A step draws B examples, runs each shard's forward and backward pass, adds the shards' gradients
// up in shard order and takes one step of SGD with weight decay. With several threads, each trains
// a copy of the model on its share of the shards and takes the same steps, as data-parallel
// training on several GPUs does: the shards depend only on B, and every copy adds the same
// gradients in the same order, so a run gives the same result on any number of threads. A few
// times a second the validation loss is measured, and the weights that gave the lowest one are
// what the run ends with: training longer never leaves a worse model.

/// <summary>How to train: the starting learning rate, for how long, on how many threads.</summary>
internal sealed record TrainOptions(float LearningRate, double Seconds = 1, long? Steps = null, int Threads = 1);

/// <summary>What a training run did. The model ends with the weights of BestStep, whose
/// validation loss (ValidationLoss) was the lowest measured; TrainLoss is the mean training loss of
/// the stretch that led to it. LossCurve holds the mean training loss in each stretch of the run,
/// for the sparkline. DivergedAt is the step whose loss was not finite, if one was.</summary>
internal sealed record TrainResult(long Steps, double Seconds, int Threads, float TrainLoss, double ValidationLoss,
    long BestStep, int Checks, double CheckSeconds, long? DivergedAt, long AllocatedBytesPerStep, float[] LossCurve,
    bool StoppedEarly);

internal static class Trainer
{
    public const int CurvePoints = 40;
    // The learning rate's schedule (README, "The defaults, measured"): up from a tenth of the rate
    // over the first twentieth of the run, where the first large steps of a small list of names
    // would overshoot; the last fifth at a tenth of the rate, where small steps settle into the
    // minimum that the large ones found.
    public const double WarmUpTo = 0.05, DecayFrom = 0.8, SlowFactor = 0.1;
    // Weight decay, as strong as this many examples' worth of evidence: λ = PriorExamples / the
    // training examples, so that a short list of names, which a model learns by heart within a
    // second, is held back more than a long one (README, "The defaults, measured"); and at most
    // MaxDecay, so that a handful of names still trains.
    public const double PriorExamples = 30, MaxDecay = 0.01;

    public static float DecayFor(Examples train) => (float)Math.Min(MaxDecay, PriorExamples / train.Count);
    // Keeping the best: validation checks take at most this share of the time, and come at most
    // this often; a forward pass costs about a third of a training example (forward and backward).
    public const double CheckShare = 0.03, CheckGapSeconds = 0.05, ForwardShare = 1.0 / 3;

    /// <summary>The learning rate a fraction `done` of the way through a run.</summary>
    public static float RateAt(float lr, double done) =>
        (float)(lr * (done < WarmUpTo ? SlowFactor + (1 - SlowFactor) * done / WarmUpTo : done < DecayFrom ? 1 : SlowFactor));

    /// <summary>SGD with weight decay on random batches for `Seconds` of wall time or exactly
    /// `Steps` steps, whichever is given, or until `stop` is cancelled (after at least one step);
    /// the model ends with the weights that checked best. `progress`, if given, hears (step,
    /// elapsed seconds, loss) a few times a second.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static TrainResult Train(Model model, Examples train, Examples validation, TrainOptions o, Rng rng,
        CancellationToken stop = default, Action<long, double, float>? progress = null)
    {
        using var stepper = new Stepper(model, train, o.Threads, DecayFor(train));
        var best = new KeepBest(model, validation);
        var curve = new LossCurve();
        // with --steps the checks fall on steps that depend only on the sizes, so that the run is
        // reproducible: as many examples between checks as keep their share below CheckShare
        long checkEvery = Math.Max(1, (long)Math.Ceiling(validation.Count * ForwardShare / (CheckShare * model.BatchSize)));
        // what a step allocates, all threads together; what the checks and reports allocate is left out
        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true), allocatedElsewhere = 0;
        var clock = Stopwatch.StartNew();
        double elapsed = 0, lastReport = 0;
        long step = 0, divergedAt = 0;
        while (true)
        {
            double done = o.Steps is long total ? (double)step / total : elapsed / o.Seconds;
            float loss = stepper.Step(rng, RateAt(o.LearningRate, done));
            step++;
            if (!float.IsFinite(loss))
            {
                if (best.Checks == 0)
                    throw new UserError(1, $"training diverged at step {step} (loss = {(float.IsNaN(loss) ? "NaN" : "Infinity")}); try a smaller --lr");
                divergedAt = step;
                break;
            }
            curve.Add(done, loss);
            best.Hear(loss);
            bool finished = (o.Steps is long n && step >= n) || stop.IsCancellationRequested;
            bool check = o.Steps is not null && step % checkEvery == 0, report = false;
            // reading the clock every 16 steps keeps it out of the profile, even at tiny batches
            if (step % 16 == 0 || finished)
            {
                elapsed = clock.Elapsed.TotalSeconds;
                finished |= o.Steps is null && elapsed >= o.Seconds;
                check |= o.Steps is null && elapsed >= best.Next;
                report = progress is not null && elapsed - lastReport >= 0.25;
            }
            if (report || check || finished)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                if (report)
                {
                    progress!(step, elapsed, loss);
                    lastReport = elapsed;
                }
                if (check || finished) best.Check(step, clock);
                allocatedElsewhere += GC.GetAllocatedBytesForCurrentThread() - before;
            }
            if (finished) break;
        }
        elapsed = clock.Elapsed.TotalSeconds;
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore - allocatedElsewhere;
        best.Restore();
        return new(step, elapsed, stepper.Threads, (float)best.TrainLoss, best.Loss, best.Step, best.Checks, best.Seconds,
            divergedAt > 0 ? divergedAt : null, allocated / step, curve.Means(), stop.IsCancellationRequested);
    }

    /// <summary>The weights with the lowest validation loss so far, checked at least CheckGapSeconds
    /// apart and at most CheckShare of the time; and the mean training loss of the steps since
    /// the check before them.</summary>
    sealed class KeepBest(Model model, Examples validation)
    {
        readonly float[][] weights = [.. model.Params.Select(p => new float[p.Data.Length])]; // shaped like Params
        double stretchLoss;
        long stretchSteps;

        public double Loss { get; private set; } = double.PositiveInfinity;
        public double TrainLoss { get; private set; } = double.NaN;
        public long Step { get; private set; }
        public int Checks { get; private set; }
        public double Seconds { get; private set; }               // spent checking
        public double Next { get; private set; } = CheckGapSeconds; // when the next check is due

        public void Hear(float loss) => (stretchLoss, stretchSteps) = (stretchLoss + loss, stretchSteps + 1);

        public void Check(long step, Stopwatch clock)
        {
            double started = clock.Elapsed.TotalSeconds;
            double loss = Evaluate(model, validation);
            Checks++;
            if (loss < Loss) // NaN never is
            {
                (Loss, Step, TrainLoss) = (loss, step, stretchLoss / stretchSteps);
                model.SaveWeights(weights);
            }
            (stretchLoss, stretchSteps) = (0, 0);
            double took = clock.Elapsed.TotalSeconds - started;
            Seconds += took;
            Next = started + Math.Max(CheckGapSeconds, took / CheckShare);
            if (!double.IsFinite(loss) && Checks == 1)
                throw new UserError(1, $"training diverged by step {step} (validation loss = {loss}); try a smaller --lr");
        }

        public void Restore() => model.LoadWeights(weights);
    }

    /// <summary>The mean training loss in each CurvePoints-th of the run, for the sparkline.</summary>
    sealed class LossCurve
    {
        readonly double[] sums = new double[CurvePoints];
        readonly int[] counts = new int[CurvePoints];

        public void Add(double done, float loss)
        {
            int point = Math.Min(CurvePoints - 1, (int)(done * CurvePoints));
            sums[point] += loss;
            counts[point]++;
        }

        public float[] Means() => [.. sums.Zip(counts, (sum, count) => count > 0 ? (float)(sum / count) : float.NaN)];
    }

    /// <summary>One SGD step on every thread of a crew. Its pieces of work are made once, so that a
    /// step allocates only its nodes.</summary>
    sealed class Stepper : IDisposable
    {
        readonly Examples train;
        readonly Crew crew;
        readonly Model[] models;          // one a thread, all with the same weights; [0] is the one trained
        readonly Shard[] shards;          // shard s runs on thread s mod crew.Size, on that thread's model
        readonly float[][][] gradients;   // every shard's gradients, by Param, in shard order
        readonly Node<float[]>?[] tables; // each thread's MLP table of this step
        readonly int[] picks;             // (B) the batch's examples
        readonly double[] losses;         // (S) each shard's share of the batch's mean loss
        readonly Action<int> forwardAndBack, update;
        float rate;

        public Stepper(Model model, Examples train, int threads, float decay)
        {
            this.train = train;
            crew = new Crew(Math.Min(threads, model.ShardCount));
            models = [model, .. Enumerable.Range(1, crew.Size - 1).Select(_ => model.Clone())];
            shards = [.. model.Shards.Select((shard, s) => s % crew.Size == 0 ? shard : new Shard(models[s % crew.Size], s))];
            gradients = Shard.Gradients(shards);
            tables = new Node<float[]>?[crew.Size];
            picks = new int[model.BatchSize];
            losses = new double[shards.Length];
            forwardAndBack = member =>
            {
                tables[member] = models[member].MakeTable(); // the MLP's T = matmul(E, W1), which its shards read
                for (int s = member; s < shards.Length; s += crew.Size) ForwardAndBack(models[member], s);
            };
            update = member =>
            {
                var m = models[member];
                m.Collect(gradients);
                if (tables[member] is { } table) m.BackTable(table);
                m.Step(rate, decay);
            };
        }

        public int Threads => crew.Size;

        // Every thread has a copy of the model and takes the same steps on it: between the cores
        // only gradients travel, each thread reading every shard's once a step. (A weight written
        // on one core and read on another crosses between their caches a line at a time, on
        // demand; with one copy written by one thread, two threads were slower than one.)
        public float Step(Rng rng, float lr)
        {
            // all the draws first: the random reads of the examples then overlap one another
            rng.Below(train.Count, picks);
            rate = lr;
            crew.Run(forwardAndBack);
            crew.Run(update);
            double loss = 0;
            foreach (var share in losses) loss += share;
            return (float)loss;
        }

        void ForwardAndBack(Model model, int s)
        {
            var shard = shards[s];
            // its gradients start from zero, and only this thread writes them
            foreach (var p in shard.Own) p.ZeroGrad();
            shard.Load(train, picks.AsSpan(shard.Offset, shard.Count));
            var loss = model.Loss(shard, shard.Count);
            // the batch's loss is the mean over all of it: this shard's examples weigh Count/B
            float weight = (float)shard.Count / picks.Length;
            losses[s] = (double)loss.Value * weight;
            loss.Back(weight);
        }

        public void Dispose() => crew.Dispose();
    }

    /// <summary>Mean loss over every example of a set, without training.</summary>
    public static double Evaluate(Model model, Examples set)
    {
        double total = 0;
        model.ForwardAll(set, (_, _, n, loss) => total += (double)loss * n);
        return total / set.Count;
    }

    /// <summary>The validation loss of the simplest model there is, for comparison: the next
    /// letter's probability given only the previous one, from counts in the training examples
    /// with one added to every count (so that no pair has probability zero).</summary>
    public static double CountBigramLoss(Examples train, Examples validation, int V)
    {
        var counts = new double[V * V]; // (V,V): previous letter, next letter
        counts.AsSpan().Fill(1);
        for (int i = 0; i < train.Count; i++)
            counts[train.Context(i)[^1] * V + train.Next(i)]++;
        var rowSums = new double[V];    // (V)
        for (int c = 0; c < V * V; c++) rowSums[c / V] += counts[c];
        double total = 0;
        for (int i = 0; i < validation.Count; i++)
        {
            int previous = validation.Context(i)[^1];
            total -= Math.Log(counts[previous * V + validation.Next(i)] / rowSums[previous]);
        }
        return total / validation.Count;
    }
}

/// <summary>Threads that do the parts of a piece of work together: started once a run, and
/// Run(work) gives every member its part, work(0) on the calling thread, and returns when all are
/// done. Between pieces the workers keep checking for the next one for a while (the pieces of a
/// training run come microseconds apart), then sleep; Dispose ends them.</summary>
internal sealed class Crew : IDisposable
{
    // Waiting reads the shared counter in a tight loop first, checking the clock every
    // SpinsPerCheck turns: a pause instruction or a yield to the system costs about a microsecond
    // here, as much as a shard's share of a small step. After TightTicks a waiter yields, in case
    // there are more threads than cores; a worker sleeps after SleepTicks.
    const int SpinsPerCheck = 64;
    static readonly long TightTicks = Stopwatch.Frequency / 20_000, SleepTicks = Stopwatch.Frequency / 1000; // 50 µs, 1 ms

    public int Size { get; }
    readonly Thread[] workers;
    readonly object gate = new();
    Action<int>? work;
    long generation;        // one more for every piece of work, and for the end
    int pending, sleepers;
    bool ending;
    Exception? failure;

    public Crew(int size)
    {
        Size = Math.Max(1, size);
        workers = new Thread[Size - 1];
        for (int i = 0; i < workers.Length; i++)
        {
            int member = i + 1;
            workers[i] = new Thread(() => Work(member)) { IsBackground = true, Name = $"BabyNames crew {member}" };
            workers[i].Start();
        }
    }

    public void Run(Action<int> work)
    {
        if (workers.Length == 0)
        {
            work(0);
            return;
        }
        this.work = work;
        Volatile.Write(ref pending, workers.Length);
        Start();
        Exception? workerFailure;
        try { work(0); }
        finally
        {
            long started = Stopwatch.GetTimestamp();
            for (int spins = 1; Volatile.Read(ref pending) > 0; spins++) Waited(spins, started);
            workerFailure = Interlocked.Exchange(ref failure, null);
        }
        if (workerFailure is not null) ExceptionDispatchInfo.Throw(workerFailure);
    }

    // How long a wait has gone on, every SpinsPerCheck turns (else 0); yields once it is long.
    static long Waited(int spins, long started)
    {
        if (spins % SpinsPerCheck != 0) return 0;
        long waited = Stopwatch.GetTimestamp() - started;
        if (waited > TightTicks) Thread.Yield();
        return waited;
    }

    // Interlocked is a full fence on both sides: a worker going to sleep counts itself and then
    // reads the generation, Start counts the generation and then reads the sleepers, so one of
    // them sees the other.
    void Start()
    {
        Interlocked.Increment(ref generation);
        if (Volatile.Read(ref sleepers) > 0) lock (gate) Monitor.PulseAll(gate);
    }

    void Work(int member)
    {
        long seen = 0;
        while (true)
        {
            seen = WaitFor(seen);
            if (Volatile.Read(ref ending)) return;
            try { work!(member); }
            catch (Exception e) { Interlocked.CompareExchange(ref failure, e, null); }
            Interlocked.Decrement(ref pending);
        }
    }

    long WaitFor(long seen)
    {
        long started = Stopwatch.GetTimestamp();
        for (int spins = 1; Volatile.Read(ref generation) == seen; spins++)
        {
            if (Waited(spins, started) <= SleepTicks) continue;
            lock (gate)
            {
                Interlocked.Increment(ref sleepers);
                while (Volatile.Read(ref generation) == seen) Monitor.Wait(gate);
                Interlocked.Decrement(ref sleepers);
            }
        }
        return Volatile.Read(ref generation);
    }

    public void Dispose()
    {
        if (workers.Length == 0) return;
        Volatile.Write(ref ending, true);
        Start();
        foreach (var worker in workers) worker.Join();
    }
}

// ================================================================================================
// Sampling
// ================================================================================================

/// <summary>How to draw names: the softmax temperature, the top-k cut, a prefix every name starts
/// with, bounds on the length, and whether repeats or training names may be printed.</summary>
internal sealed record SamplingRules(
    float Temperature = 1, int? TopK = null, string Prefix = "", int MinLength = 1,
    int MaxLength = Limits.MaxNameLength, bool Unique = false, bool NewOnly = false)
{
    /// <summary>The options that narrow which names may be printed, as the user gave them.</summary>
    public IEnumerable<string> Narrowing()
    {
        if (Prefix.Length > 0) yield return "--prefix";
        if (MinLength > 1) yield return "--min-length";
        if (MaxLength < Limits.MaxNameLength) yield return "--max-length";
        if (Unique) yield return "--unique";
        if (NewOnly) yield return "--new-only";
    }

    /// <summary>How many different names these rules allow with this many letters, at most
    /// (saturating at long.MaxValue), the training names taken out with --new-only.</summary>
    public long Possible(int letters, IEnumerable<string> training)
    {
        int prefix = Names.Length(Prefix);
        double count = 0;
        for (int length = Math.Max(MinLength, prefix); length <= MaxLength; length++) count += Math.Pow(letters, length - prefix);
        if (count >= long.MaxValue) return long.MaxValue;
        long possible = (long)count;
        if (NewOnly)
            possible -= training.Count(name => name.StartsWith(Prefix, StringComparison.Ordinal)
                && Names.Length(name) >= MinLength && Names.Length(name) <= MaxLength);
        return possible;
    }
}

/// <summary>Names drawn under the rules, and, when too few could be found, why.</summary>
internal sealed record Samples(IReadOnlyList<(string Name, bool InTraining)> Names, string? Failure);

internal static class Sampling
{
    /// <summary>A name that breaks a rule is drawn again; sampling gives up after SpareTries +
    /// TriesPerName × (the names it kept) draws.</summary>
    public const int TriesPerName = 100, SpareTries = 1000;

    /// <summary>One name, a letter at a time after the prefix, each drawn from
    /// softmax(logits / temperature) over the topK most likely letters, until the boundary comes up
    /// or the name is longer than MaxLength.</summary>
    public static string Sample(Model model, Vocabulary vocab, Rng rng, SamplingRules rules)
    {
        var shard = model.Shards[0];
        Span<int> context = stackalloc int[model.K];
        context.Fill(Vocabulary.Boundary);
        var name = new List<int>();
        foreach (var c in vocab.Encode(rules.Prefix)) Push(c, context, name);
        var weights = new double[model.V]; // (V)
        // one letter past MaxLength is enough to know that a name is too long
        while (name.Count <= rules.MaxLength)
        {
            shard.SetContext(context);
            int next = Draw(model.Logits(shard, 1).Value.AsSpan(0, model.V), rules, rng, weights);
            if (next == Vocabulary.Boundary) break;
            Push(next, context, name);
        }
        return vocab.Decode(name);

        static void Push(int c, Span<int> context, List<int> name)
        {
            name.Add(c);
            context[1..].CopyTo(context);
            context[^1] = c;
        }
    }

    /// <summary>A letter drawn from softmax(logits / temperature) over the topK most likely
    /// letters (ties broken by id); `weights` (V) is scratch.</summary>
    static int Draw(ReadOnlySpan<float> logits, SamplingRules rules, Rng rng, double[] weights)
    {
        var allowed = Enumerable.Range(0, logits.Length);
        if (rules.TopK is int k && k < logits.Length)
        {
            var scores = logits.ToArray();
            allowed = allowed.OrderByDescending(c => scores[c]).Take(k);
        }
        float max = float.NegativeInfinity;
        foreach (var logit in logits) max = Math.Max(max, logit);
        Array.Clear(weights);
        double total = 0;
        foreach (int c in allowed) total += weights[c] = Math.Exp((logits[c] - max) / rules.Temperature);
        double u = rng.NextDouble() * total;
        int next = -1;
        for (int c = 0; c < logits.Length && (next < 0 || u >= 0); c++)
            if (weights[c] > 0)
            {
                next = c; // if rounding leaves u above 0 at the end, the last allowed letter
                u -= weights[c];
            }
        return next;
    }

    /// <summary>`count` names that keep the rules, or as many as could be found, with the reason
    /// it stopped short.</summary>
    public static Samples SampleMany(Model model, Vocabulary vocab, Rng rng, SamplingRules rules,
        int count, IReadOnlySet<string> training)
    {
        var names = new List<(string, bool)>(count);
        var seen = new HashSet<string>();
        long tries = 0;
        while (names.Count < count)
        {
            if (++tries > SpareTries + (long)TriesPerName * names.Count)
            {
                var narrowing = rules.Narrowing().ToList();
                string advice = narrowing.Count > 0 ? $"loosen {string.Join(", ", narrowing)}"
                    : $"the model's names are empty or run past {Limits.MaxNameLength} letters; train longer or lower --temperature";
                return new(names, $"found only {names.Count} of {count} names that keep the rules in {tries - 1:N0} tries; {advice}");
            }
            var name = Sample(model, vocab, rng, rules);
            int length = Names.Length(name);
            bool inTraining = training.Contains(name);
            if (length < rules.MinLength || length > rules.MaxLength || (rules.NewOnly && inTraining)
                || (rules.Unique && !seen.Add(name))) continue;
            names.Add((name, inTraining));
        }
        return new(names, null);
    }
}

// ================================================================================================
// Scoring: how surprising each letter of a name is to the model
// ================================================================================================
// A letter's surprise is −log2 of the probability the model gave it, in bits: 1 bit is a coin
// flip, 5 bits a one-in-32 chance. A name's surprise is the sum over its letters and its end.

/// <summary>A name's surprise in bits and each letter's: Letters holds the letters' ids, the end of
/// the name last, and LetterBits their surprise (both views of arrays that all the names share);
/// or, for a name that cannot be scored, why.</summary>
internal sealed record NameScore(string Name, double Bits, bool InTraining, ArraySegment<byte> Letters, ArraySegment<double> LetterBits, string? Error)
{
    /// <summary>Bits per letter, the end counted as one: names of different lengths compare.</summary>
    public double BitsPerLetter => LetterBits.Count == 0 ? double.NaN : Bits / LetterBits.Count;

    /// <summary>Which letter surprised the model most.</summary>
    public int MostSurprising
    {
        get
        {
            int most = -1;
            for (int i = 0; i < LetterBits.Count; i++)
                if (most < 0 || LetterBits[i] > LetterBits[most]) most = i;
            return most;
        }
    }
}

internal static class Scoring
{
    /// <summary>Scores names, in their order: every letter's probability comes from the same
    /// forward pass as training, a shard at a time on every core, with no backward pass.</summary>
    public static List<NameScore> Score(Model model, Vocabulary vocab, IReadOnlySet<string> training, IReadOnlyList<string> names)
    {
        var normalized = names.Select(name => Names.Normalize(name)).ToArray();
        var errors = normalized.Select(name => Why(name, vocab)).ToArray();
        var examples = new Examples([.. normalized.Where((_, i) => errors[i] is null)], vocab, model.K);
        // (examples): each example's letter and its surprise, the names' one after another; a name
        // of L letters has L + 1 examples, the last of which predicts its end
        var letters = new byte[examples.Count];
        var bits = new double[examples.Count];
        model.ForwardAll(examples, (shard, start, n, _) =>
        {
            for (int b = 0; b < n; b++)
            {
                letters[start + b] = (byte)shard.Targets[b];
                bits[start + b] = -Math.Log2(shard.Probs[b * model.Vp + shard.Targets[b]]);
            }
        }, threads: Environment.ProcessorCount);
        var scores = new List<NameScore>(names.Count);
        for (int i = 0, next = 0; i < names.Count; i++)
        {
            if (errors[i] is string error)
            {
                scores.Add(new(normalized[i].Length > 0 ? normalized[i] : names[i], double.NaN, false, [], [], error));
                continue;
            }
            int count = Names.Length(normalized[i]) + 1;
            double sum = 0;
            for (int t = next; t < next + count; t++) sum += bits[t];
            scores.Add(new(normalized[i], sum, training.Contains(normalized[i]), new(letters, next, count), new(bits, next, count), null));
            next += count;
        }
        return scores;
    }

    static string? Why(string name, Vocabulary vocab)
    {
        if (name.Length == 0) return "an empty name";
        foreach (var r in name.EnumerateRunes())
            if (Names.Problem(r.Value) is string problem) return problem;
        int length = Names.Length(name);
        if (length > Limits.MaxNameLength) return $"{length} letters, more than the {Limits.MaxNameLength} a name may have";
        return vocab.Knows(name, out var unknown) ? null : $"'{unknown}' is a letter the model never saw";
    }
}

// ================================================================================================
// Model files
// ================================================================================================
// Format, little-endian, version 2:
//   the 8 bytes "BABYNAME", a uint32 version;
//   the model: int32 kind (0 the bag, 1 the MLP), V, K, D, H, and a byte, positional;
//   the vocabulary: V−1 int32 code points, the boundary left out;
//   the run that made it: int32 names read, int64 steps, int64 the step whose weights were kept,
//   float64 train loss, validation loss, the count bigram's validation loss, the mean name length;
//   the training names (to mark samples that are in them): an int32 count, then each name as a
//   .NET string (a 7-bit encoded length, then UTF-8);
//   the tables as float32 at their padded shapes, in Model.Params order (E, W1, b1, W, b; the bag
//   has no W1 and b1);
//   last, an 8-byte FNV-1a hash of everything before it, so that a damaged file is caught.
// Version 1 held only the bag: after the version came int32 V, K, D, Dp, Vr, Vp and the positional
// byte, then the vocabulary, the figures without the kept step, the names, the tables and the hash.
// It still loads.

/// <summary>A trained model with everything needed to sample from it, and the figures of the run
/// that made it.</summary>
internal sealed record Trained(Model Model, Vocabulary Vocab, IReadOnlySet<string> TrainingNames, int NameCount,
    long Steps, long BestStep, double TrainLoss, double ValidationLoss, double BigramLoss, double MeanLength);

internal static class ModelFile
{
    static ReadOnlySpan<byte> Magic => "BABYNAME"u8;
    const uint Version = 2, FirstVersion = 1;
    const int MaxNameBytes = Limits.MaxNameLength * 4; // UTF-8: 4 bytes a letter at most

    /// <summary>Checks, before a run trains, that `path` can take a model, and returns the file the
    /// model will go to: a symbolic link is followed, so that the link stays and its target is
    /// replaced. A folder, device or pipe is refused, and so is a folder that is missing or cannot
    /// be written to.</summary>
    public static string Target(string path)
    {
        string full = Path.GetFullPath(path);
        if (KindOf(full) is string kind) throw SaveError(path, $"it is {kind}; give the name of a file");
        string target = new FileInfo(full).LinkTarget is null ? full : File.ResolveLinkTarget(full, returnFinalTarget: true)!.FullName;
        string folder = Path.GetDirectoryName(target)!;
        if (!Directory.Exists(folder)) throw SaveError(path, $"there is no folder '{folder}'; create it, or give another path");
        try { File.Delete(WriteTemporary(folder, [])); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw SaveError(path, $"the folder '{folder}' cannot be written to; give a path in another folder");
        }
        return target;
    }

    static UserError SaveError(string path, string why) => new(1, $"cannot save the model to '{path}': {why}");

    /// <summary>Writes a new file with a short name of fixed length beside the target and returns
    /// its path; the name never grows with the target's, so that a long one still fits.</summary>
    static string WriteTemporary(string folder, byte[] bytes)
    {
        string path = Path.Combine(folder, $".babynames-{Random.Shared.Next():x8}.tmp");
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        file.Write(bytes);
        file.Flush(flushToDisk: true);
        return path;
    }

    /// <summary>Writes the model to a temporary file beside the target (from Target) and renames it
    /// into place, so that an interrupted save never leaves a broken model behind; a file that was
    /// there keeps its permissions.</summary>
    public static void Save(Trained t, string target, string shownPath)
    {
        byte[] bytes = Serialize(t);
        string? temporary = null;
        try
        {
            temporary = WriteTemporary(Path.GetDirectoryName(target)!, bytes);
            if (!OperatingSystem.IsWindows() && File.Exists(target)) File.SetUnixFileMode(temporary, File.GetUnixFileMode(target));
            File.Move(temporary, target, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (temporary is not null) File.Delete(temporary);
            // the system's message names the temporary file, which the user never asked for
            throw SaveError(shownPath, temporary is null ? e.Message : e.Message.Replace(temporary, target));
        }
    }

    static byte[] Serialize(Trained t)
    {
        var body = new MemoryStream();
        using (var w = new BinaryWriter(body, Encoding.UTF8, leaveOpen: true))
        {
            var m = t.Model;
            w.Write(Magic);
            w.Write(Version);
            foreach (var size in (int[])[(int)m.Kind, m.V, m.K, m.D, m.H]) w.Write(size);
            w.Write(m.Positional);
            foreach (var c in t.Vocab.Letters) w.Write(c.Value);
            w.Write(t.NameCount);
            w.Write(t.Steps);
            w.Write(t.BestStep);
            foreach (var figure in (double[])[t.TrainLoss, t.ValidationLoss, t.BigramLoss, t.MeanLength]) w.Write(figure);
            w.Write(t.TrainingNames.Count);
            foreach (var name in t.TrainingNames) w.Write(name);
            foreach (var table in m.Params) foreach (var x in table.Data) w.Write(x);
        }
        body.Write(BitConverter.GetBytes(Fnv1a(body.GetBuffer().AsSpan(0, (int)body.Length))));
        return body.ToArray();
    }

    /// <summary>Reads a model file, checking everything it says; reads no more than its header
    /// says it holds, so that a device or a huge file is refused early.</summary>
    public static Trained Load(string path)
    {
        UserError Bad(string why) => new(1, $"model file '{path}' {why}; give a file saved with --save");
        try
        {
            using var file = Names.OpenFile(path, "model file", "give a file saved with --save");
            using var r = new BinaryReader(new HashingStream(file), Encoding.UTF8);
            if (!r.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic)) throw Bad("is not a BabyNames model");
            uint version = r.ReadUInt32();
            if (version is not (Version or FirstVersion))
                throw Bad($"has format version {version}, and this program reads versions {FirstVersion} and {Version}");
            var (kind, V, K, D, H, positional) = ReadSizes(r, version) ?? throw Bad("has sizes this program does not accept");
            var vocab = ReadVocabulary(r, V) ?? throw Bad("has a damaged vocabulary");
            int nameCount = r.ReadInt32();
            long steps = r.ReadInt64(), bestStep = version == FirstVersion ? steps : r.ReadInt64();
            double trainLoss = r.ReadDouble(), validationLoss = r.ReadDouble(), bigramLoss = r.ReadDouble(), meanLength = r.ReadDouble();
            if (!Array.TrueForAll([trainLoss, validationLoss, bigramLoss, meanLength], x => double.IsFinite(x) && x >= 0)
                || steps < 0 || bestStep < 0 || bestStep > steps || nameCount < 2 || nameCount > Limits.MaxNames)
                throw Bad("is damaged");
            var names = ReadNames(r, nameCount, vocab) ?? throw Bad("is damaged");
            // one shard is enough to sample and score with
            var model = new Model(kind, V, K, D, H, positional, Model.ShardExamples, rng: null);
            foreach (var table in model.Params)
            {
                for (int i = 0; i < table.Data.Length; i++) table.Data[i] = r.ReadSingle();
                if (!Array.TrueForAll(table.Data, float.IsFinite)) throw Bad("is damaged");
            }
            ulong hash = ((HashingStream)r.BaseStream).Hash;
            if (r.ReadUInt64() != hash) throw Bad("is damaged (changed since it was saved)");
            if (file.ReadByte() >= 0) throw Bad("has data past its end");
            return new(model, vocab, names, nameCount, steps, bestStep, trainLoss, validationLoss, bigramLoss, meanLength);
        }
        catch (EndOfStreamException) { throw Bad("is damaged (cut short)"); }
        catch (Exception e) when (e is DecoderFallbackException or FormatException or ArgumentException) { throw Bad("is damaged"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserError(1, $"cannot read model file '{path}': {e.Message}");
        }
    }

    // the model's kind and sizes, or null if they are not ones this program makes
    static (ModelKind, int, int, int, int, bool)? ReadSizes(BinaryReader r, uint version)
    {
        var kind = ModelKind.Bag;
        int V, K, D, H = 0;
        if (version == FirstVersion)
        {
            (V, K, D) = (r.ReadInt32(), r.ReadInt32(), r.ReadInt32());
            r.ReadBytes(3 * sizeof(int)); // Dp, Vr, Vp: they follow from the others
        }
        else
        {
            int kindNumber = r.ReadInt32();
            if (!Enum.IsDefined((ModelKind)kindNumber)) return null;
            (kind, V, K, D, H) = ((ModelKind)kindNumber, r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32());
        }
        bool positional = r.ReadBoolean();
        bool fits = V >= 2 && V <= Limits.MaxVocabulary && K >= 1 && K <= Limits.MaxContext && D >= 1 && D <= Limits.MaxDim
            && (kind == ModelKind.Mlp ? H >= 1 && H <= Limits.MaxHidden : H == 0);
        return fits ? (kind, V, K, D, H, positional) : null;
    }

    // the V − 1 letters, in increasing order, each one a names file may hold; or null
    static Vocabulary? ReadVocabulary(BinaryReader r, int V)
    {
        var letters = new Rune[V - 1];
        for (int i = 0; i < letters.Length; i++)
        {
            int c = r.ReadInt32();
            if (Names.Problem(c) is not null || (i > 0 && c <= letters[i - 1].Value)) return null;
            letters[i] = new Rune(c);
        }
        return new Vocabulary(letters);
    }

    // the training names, each at most MaxNameLength letters of the vocabulary; or null
    static HashSet<string>? ReadNames(BinaryReader r, int nameCount, Vocabulary vocab)
    {
        int count = r.ReadInt32();
        if (count < 0 || count > nameCount) return null;
        var names = new HashSet<string>(count);
        for (int i = 0; i < count; i++)
        {
            int length = r.Read7BitEncodedInt();
            if (length < 1 || length > MaxNameBytes) return null;
            string name = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(r.ReadBytes(length));
            if (Names.Length(name) > Limits.MaxNameLength || !vocab.Knows(name, out _)) return null;
            names.Add(name);
        }
        return names;
    }

    /// <summary>"a folder", "a device", "a pipe" or "a socket" for what is at the path (links
    /// followed), or null for a plain file or nothing. .NET has no public way to tell a device or a
    /// pipe from a file; its own native library's stat does, with the file type in the high bits
    /// of Mode (the second int of its FileStatus, on every platform it runs on).</summary>
    static string? KindOf(string path)
    {
        if (Directory.Exists(path)) return "a folder";
        if (OperatingSystem.IsWindows() || Stat(path, out var status) != 0) return null;
        return (status.Mode & 0xF000) switch
        {
            0x8000 => null, 0x4000 => "a folder", 0x1000 => "a pipe", 0xC000 => "a socket", _ => "a device",
        };
    }

    [StructLayout(LayoutKind.Sequential)]
    unsafe struct FileStatus
    {
        public int Flags, Mode;
        public fixed byte Rest[256]; // the rest of .NET's FileStatus, never read
    }

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_Stat", CharSet = CharSet.Ansi)]
    static extern int Stat(string path, out FileStatus status);

    /// <summary>Reads a stream, keeping the FNV-1a hash of what has been read, up to the moment
    /// Hash is taken (the stored hash itself is read after).</summary>
    sealed class HashingStream(Stream inner) : Stream
    {
        ulong hash = FnvStart;
        bool taken;

        public ulong Hash
        {
            get
            {
                taken = true;
                return hash;
            }
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int read = inner.Read(buffer, offset, count);
            if (!taken) hash = Fnv1a(buffer.AsSpan(offset, read), hash);
            return read;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    const ulong FnvStart = 14695981039346656037UL;

    static ulong Fnv1a(ReadOnlySpan<byte> bytes, ulong hash = FnvStart)
    {
        foreach (var b in bytes) hash = (hash ^ b) * 1099511628211UL;
        return hash;
    }
}

// ================================================================================================
// A run: names → split → examples → model → train → save → sample (or score)
// ================================================================================================

/// <summary>Everything the command line decided. LearningRate and Dim null mean the model's own
/// default; Threads null means every core.</summary>
internal sealed record Settings(
    double Seconds = 1, long? Steps = null, int Samples = 20, long Seed = 42, string? NamesPath = null,
    ModelKind Model = ModelKind.Mlp, int BatchSize = 512, int Context = 6, int? Dim = null, int Hidden = 128,
    float? LearningRate = null, bool OrderBlind = false, int? Threads = null, SamplingRules Rules = null!,
    string? SavePath = null, string? LoadPath = null, bool Json = false,
    IReadOnlyList<string>? Score = null, string? ScoreFile = null, bool Sort = false)
{
    public SamplingRules Rules { get; init; } = Rules ?? new();
    public float Rate => LearningRate ?? DefaultsFor(Model).LearningRate;
    public int Width => Dim ?? DefaultsFor(Model).Dim;
    public int ThreadCount => Threads ?? Environment.ProcessorCount;
    public bool ScoresNames => Score is not null || ScoreFile is not null;

    /// <summary>What differs between the models' defaults (README, "The defaults, measured").</summary>
    public static (float LearningRate, int Dim) DefaultsFor(ModelKind model) => model == ModelKind.Mlp ? (1f, 32) : (0.1f, 16);
}

/// <summary>What a run produced: a model, how it was trained (null when loaded), names drawn from
/// it or scores of names, where it was saved, and what went wrong after training, if anything.</summary>
internal sealed record Outcome(Settings Settings, Trained Trained, TrainResult? Training, double StartupSeconds,
    Samples? Samples, IReadOnlyList<NameScore>? Scores, string? SavedTo, string? SaveError)
{
    /// <summary>Problems that leave the output standing but the run failed (exit code 1).</summary>
    public IEnumerable<string> Failures()
    {
        if (Samples?.Failure is string sampling) yield return sampling;
        if (Scores?.Count(s => s.Error is not null) is int bad and > 0) yield return $"{bad} of {Scores.Count} names could not be scored";
        if (SaveError is not null) yield return SaveError;
    }
}

internal static class Runner
{
    // independent random streams drawn from the one --seed
    const int SplitStream = 1, InitStream = 2, BatchStream = 3, SampleStream = 4;

    /// <summary>A whole run. `live`, when given, is the terminal to show progress on; `training`
    /// hears when training starts (true) and ends (false), since Ctrl+C then means "stop training".
    /// Everything that can be checked before training is checked first.</summary>
    public static Outcome Run(Settings s, CancellationToken stop = default, TextWriter? live = null, Action<bool>? training = null)
    {
        string? saveTo = s.SavePath is string path ? ModelFile.Target(path) : null;
        var toScore = s.ScoresNames ? NamesToScore(s) : null;
        var (trained, result, startup) = s.LoadPath is string load ? (ModelFile.Load(load), null, 0)
            : Train(s, stop, live, training, checkRules: toScore is null);
        if (s.LoadPath is not null && toScore is null) CheckRules(s, trained.Vocab, trained.TrainingNames);
        string? saveError = null;
        if (saveTo is not null)
            try { ModelFile.Save(trained, saveTo, s.SavePath!); }
            catch (UserError e) { saveError = $"{e.Message}; the model was not saved"; }
        var samples = toScore is null
            ? Sampling.SampleMany(trained.Model, trained.Vocab, new Rng(s.Seed, SampleStream), s.Rules, s.Samples, trained.TrainingNames)
            : null;
        var scores = toScore is null ? null : Scoring.Score(trained.Model, trained.Vocab, trained.TrainingNames, toScore);
        if (scores is not null && s.Sort) scores = [.. scores.OrderBy(x => x.Error is null ? x.BitsPerLetter : double.PositiveInfinity)];
        return new(s, trained, result, startup, samples, scores, saveError is null ? s.SavePath : null, saveError);
    }

    /// <summary>names → split → examples → model → train (keeping the best weights).</summary>
    static (Trained, TrainResult?, double) Train(Settings s, CancellationToken stop, TextWriter? live, Action<bool>? training, bool checkRules)
    {
        var names = Names.Read(s.NamesPath);
        var corpus = Corpus.Split(names, new Rng(s.Seed, SplitStream));
        if (checkRules) CheckRules(s, corpus.Vocab, corpus.Train);
        var train = new Examples(corpus.Train, corpus.Vocab, s.Context);
        var validation = new Examples(corpus.Validation, corpus.Vocab, s.Context);
        var model = new Model(s.Model, corpus.Vocab.Size, s.Context, s.Width, s.Hidden, !s.OrderBlind, s.BatchSize, new Rng(s.Seed, InitStream));
        if (stop.IsCancellationRequested) throw new UserError(130, "interrupted before training started; nothing was saved");
        double startup = (DateTime.Now - Process.GetCurrentProcess().StartTime).TotalSeconds;
        TrainResult result;
        training?.Invoke(true);
        try
        {
            var options = new TrainOptions(s.Rate, s.Seconds, s.Steps, s.ThreadCount);
            result = Trainer.Train(model, train, validation, options, new Rng(s.Seed, BatchStream), stop, live is null ? null : Progress(s, live));
        }
        finally
        {
            training?.Invoke(false);
            live?.Write("\r\x1b[K"); // an error after this is one clean line too
        }
        live?.WriteLine($"loss {Sparkline(result.LossCurve)} {result.TrainLoss:F3}");
        var trained = new Trained(model, corpus.Vocab, corpus.Train.ToHashSet(), names.Count, result.Steps, result.BestStep,
            result.TrainLoss, result.ValidationLoss, Trainer.CountBigramLoss(train, validation, corpus.Vocab.Size), names.Average(Names.Length));
        return (trained, result, startup);
    }

    /// <summary>The names after --score, then the lines of --score-file, blank lines left out.</summary>
    static List<string> NamesToScore(Settings s)
    {
        var names = new List<string>(s.Score ?? []);
        if (s.ScoreFile is string file) names.AddRange(Names.Lines(Names.ReadText(file, out _)));
        names.RemoveAll(string.IsNullOrWhiteSpace);
        if (names.Count == 0) throw new UserError(2, "no names to score: give them after --score, or one a line in --score-file");
        return names;
    }

    /// <summary>Sampling rules that no model could keep fail now, before any training.</summary>
    static void CheckRules(Settings s, Vocabulary vocab, IEnumerable<string> training)
    {
        var rules = s.Rules;
        if (!vocab.Knows(rules.Prefix, out var unknown))
            throw new UserError(2, $"--prefix has '{unknown}', which no name in the data has; use only letters from the names");
        long possible = rules.Unique ? rules.Possible(vocab.Size - 1, training) : long.MaxValue;
        if (possible < s.Samples)
            throw new UserError(2, $"--unique --samples {s.Samples} asks for more names than the rules allow: at most {possible:N0}; ask for fewer, or loosen {string.Join(", ", rules.Narrowing().Where(o => o != "--unique"))}");
    }

    static Action<long, double, float> Progress(Settings s, TextWriter live) => (step, elapsed, loss) =>
    {
        string line = $"step {step:N0}  {step * (double)s.BatchSize / elapsed / 1e6:F2} M examples/s  loss {loss:F3}  "
            + (s.Steps is long n ? $"{n - step:N0} steps left" : $"{Math.Max(0, s.Seconds - elapsed):F1} s left");
        // one line that fits the terminal, so that rewriting it leaves nothing behind
        live.Write($"\r\x1b[K{line[..Math.Min(line.Length, TerminalWidth() - 1)]}");
    };

    static int TerminalWidth()
    {
        try { return Console.WindowWidth > 0 ? Console.WindowWidth : 80; }
        catch (IOException) { return 80; }
    }

    /// <summary>The loss curve as one line of block characters, high loss tall.</summary>
    static string Sparkline(float[] curve)
    {
        const string blocks = "▁▂▃▄▅▆▇█";
        var points = curve.Where(float.IsFinite).ToArray();
        if (points.Length == 0) return "";
        float low = points.Min(), high = points.Max();
        return string.Concat(points.Select(x => blocks[high > low ? (int)((x - low) / (high - low) * (blocks.Length - 1) + 0.5f) : 0]));
    }
}

// ================================================================================================
// The report: what a run produced, as text or as JSON
// ================================================================================================

internal static class Report
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    static void Line(TextWriter text, FormattableString line) => text.WriteLine(line.ToString(Inv));

    static string Plural(long count, string noun) => $"{count.ToString("N0", Inv)} {noun}{(count == 1 ? "" : "s")}";

    static double ExamplesPerSecond(Outcome o) =>
        o.Training is { Seconds: > 0 } t ? t.Steps * (double)o.Settings.BatchSize / t.Seconds : 0;

    static IReadOnlyList<(string Name, bool InTraining)> SampleList(Outcome o) => o.Samples?.Names ?? [];

    static double NewShare(Outcome o) => SampleList(o) is { Count: > 0 } s ? s.Count(x => !x.InTraining) / (double)s.Count : 0;

    static double MeanLength(Outcome o) => SampleList(o) is { Count: > 0 } s ? s.Average(x => Names.Length(x.Name)) : 0;

    public static string Name(ModelKind kind) => kind.ToString().ToLowerInvariant(); // "bag", "mlp": as --model takes them

    static string Describe(Model m) => m.Kind == ModelKind.Mlp
        ? $"MLP, context {m.K}, width {m.D}, {m.H} hidden units"
        : $"bag of embeddings{(m.Positional ? "" : " (order-blind)")}, context {m.K}, width {m.D}";

    public static void Text(Outcome o, TextWriter text)
    {
        var t = o.Trained;
        Line(text, $"Model: {Describe(t.Model)}");
        if (o.Training is { } run)
        {
            Line(text, $"Elapsed: {run.Seconds:F3} seconds{(run.StoppedEarly ? " (stopped early with Ctrl+C)" : "")}");
            Line(text, $"Steps: {run.Steps:N0} ({ExamplesPerSecond(o) / 1e6:F2} M examples/s on {Plural(run.Threads, "thread")})");
            if (run.DivergedAt is long diverged)
                Line(text, $"Training diverged at step {diverged:N0}; kept the weights of step {run.BestStep:N0} (a smaller --lr would go further)");
            else if (run.BestStep != run.Steps)
                Line(text, $"Kept: the weights of step {run.BestStep:N0}, where the validation loss was lowest");
        }
        else
            Line(text, $"Loaded: {o.Settings.LoadPath} (trained for {Plural(t.Steps, "step")})");
        // the kept step's: the mean training loss of the steps since the check before it
        Line(text, $"Final loss: {t.TrainLoss:F3} (train) {t.ValidationLoss:F3} (validation)");
        var samples = SampleList(o);
        if (samples.Count > 0)
        {
            text.WriteLine("Samples:");
            int width = samples.Count.ToString(Inv).Length;
            for (int i = 0; i < samples.Count; i++)
                Line(text, $"{(i + 1).ToString(Inv).PadLeft(width + 1)} : {samples[i].Name}{(samples[i].InTraining ? " (in training data)" : "")}");
            Line(text, $"New names: {samples.Count(x => !x.InTraining)} of {samples.Count} ({NewShare(o) * 100:F0}%); mean length {MeanLength(o):F1} letters (the data's: {t.MeanLength:F1})");
        }
        if (o.Scores is { } scores) Scores(scores, t.Vocab, text);
        Line(text, $"Validation loss: {t.ValidationLoss:F3} for this model, {t.BigramLoss:F3} for a count bigram");
        if (o.SavedTo is string saved) Line(text, $"Saved model to {saved}");
    }

    /// <summary>One line a name: its bits, bits a letter, and each letter's bits, the most
    /// surprising in brackets.</summary>
    static void Scores(IReadOnlyList<NameScore> scores, Vocabulary vocab, TextWriter text)
    {
        text.WriteLine("Scores (surprise in bits; lower is more name-like):");
        int width = Math.Min(24, scores.Max(s => Names.Length(s.Name)));
        var line = new StringBuilder();
        foreach (var s in scores)
        {
            line.Clear().Append("  ").Append(s.Name).Append(' ', Math.Max(0, width - Names.Length(s.Name))).Append("  ");
            if (s.Error is string error) line.Append("cannot be scored: ").Append(error);
            else
            {
                Fixed(line.Append(' ', s.Bits < 100 ? s.Bits < 10 ? 2 : 1 : 0), s.Bits, 1).Append(" bits  ");
                Fixed(line, s.BitsPerLetter, 2).Append(" a letter").Append(s.InTraining ? "  (in training data)" : "").Append(' ');
                int most = s.MostSurprising;
                for (int i = 0; i < s.Letters.Count; i++)
                    Fixed(line.Append(i == most ? " [" : "  ").Append(vocab.Show(s.Letters[i])).Append(' '), s.LetterBits[i], 1).Append(i == most ? "]" : "");
            }
            line.Append('\n');
            text.Write(line);
        }
    }

    // Appends x (≥ 0) with `decimals` decimals, as {x:F1} or {x:F2} would: a million numbers a
    // second faster than formatting doubles.
    static StringBuilder Fixed(StringBuilder line, double x, int decimals)
    {
        long scale = decimals == 1 ? 10 : 100, units = (long)Math.Round(x * scale, MidpointRounding.AwayFromZero);
        return line.Append(units / scale).Append('.').Append((units % scale).ToString(decimals == 1 ? "0" : "00", Inv));
    }

    public static void Json(Outcome o, TextWriter text)
    {
        var t = o.Trained;
        var run = o.Training;
        var report = new JsonObject
        {
            ["model"] = Name(t.Model.Kind),
            ["seconds"] = run?.Seconds ?? 0,
            ["steps"] = t.Steps,
            ["best_step"] = t.BestStep,
            ["examples"] = run is null ? null : run.Steps * (double)o.Settings.BatchSize,
            ["examples_per_second"] = Math.Round(ExamplesPerSecond(o)),
            ["threads"] = run?.Threads ?? 1,
            ["macs_per_example"] = run is null ? null : Math.Round(t.Model.MultiplyAddsPerExample(run.Threads), 1),
            ["train_loss"] = t.TrainLoss,
            ["val_loss"] = t.ValidationLoss,
            ["bigram_val_loss"] = t.BigramLoss,
            ["diverged_at_step"] = run?.DivergedAt,
            ["checks"] = run?.Checks ?? 0,
            ["check_seconds"] = run?.CheckSeconds ?? 0,
            ["alloc_bytes_per_step"] = run?.AllocatedBytesPerStep ?? 0,
            ["startup_seconds"] = o.StartupSeconds,
            ["avx512"] = Vector512.IsHardwareAccelerated,
            ["stopped_early"] = run?.StoppedEarly ?? false,
            ["vocab_size"] = t.Vocab.Size,
            ["names"] = t.NameCount,
            ["new_share"] = NewShare(o),
            ["mean_length"] = MeanLength(o),
            ["data_mean_length"] = t.MeanLength,
            ["samples"] = new JsonArray([.. SampleList(o).Select(x => new JsonObject { ["name"] = x.Name, ["in_training"] = x.InTraining })]),
            ["saved"] = o.SavedTo,
            ["error"] = o.Failures().ToList() is { Count: > 0 } failures ? string.Join("; ", failures) : null,
            ["options"] = Options(o),
        };
        // The scores come last, written one by one as they go out: there can be millions of them.
        var buffer = new ArrayBufferWriter<byte>();
        using var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        void Pass()
        {
            w.Flush();
            text.Write(Encoding.UTF8.GetString(buffer.WrittenSpan));
            buffer.ResetWrittenCount();
        }
        w.WriteStartObject();
        foreach (var (key, value) in report)
        {
            w.WritePropertyName(key);
            if (value is null) w.WriteNullValue(); else value.WriteTo(w);
        }
        if (o.Scores is { } scores)
        {
            w.WriteStartArray("scores");
            foreach (var s in scores)
            {
                Score(w, s, t.Vocab);
                if (w.BytesPending > 1 << 16) Pass();
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
        Pass();
        text.WriteLine();
    }

    static void Score(Utf8JsonWriter w, NameScore s, Vocabulary vocab)
    {
        w.WriteStartObject();
        w.WriteString("name", s.Name);
        if (s.Error is null) w.WriteNumber("bits", Math.Round(s.Bits, 4)); else w.WriteNull("bits");
        if (s.Error is null) w.WriteNumber("bits_per_letter", Math.Round(s.BitsPerLetter, 4)); else w.WriteNull("bits_per_letter");
        w.WriteBoolean("in_training", s.InTraining);
        w.WriteStartArray("letters");
        for (int i = 0; i < s.Letters.Count; i++)
        {
            w.WriteStartObject();
            w.WriteString("letter", vocab.Show(s.Letters[i]));
            w.WriteNumber("bits", Math.Round(s.LetterBits[i], 4));
            w.WriteEndObject();
        }
        w.WriteEndArray();
        if (s.Error is string error) w.WriteString("error", error); else w.WriteNull("error");
        w.WriteEndObject();
    }

    /// <summary>Every option's value. Those only training uses are null with --load; the model's
    /// own sizes come from the model, which a model file records.</summary>
    static JsonObject Options(Outcome o)
    {
        var (s, m, rules, trained) = (o.Settings, o.Trained.Model, o.Settings.Rules, o.Training is not null);
        return new()
        {
            ["names_file"] = trained ? s.NamesPath ?? "(bundled)" : null,
            ["model"] = Name(m.Kind),
            ["seconds"] = trained ? s.Seconds : null,
            ["steps"] = trained ? s.Steps : null,
            ["samples"] = s.Samples,
            ["seed"] = s.Seed,
            ["batch_size"] = trained ? s.BatchSize : null,
            ["context"] = m.K,
            ["dim"] = m.D,
            ["hidden"] = m.Kind == ModelKind.Mlp ? m.H : null,
            ["lr"] = trained ? s.Rate : null,
            ["threads"] = trained ? s.ThreadCount : null,
            ["order_blind"] = !m.Positional,
            ["temperature"] = rules.Temperature,
            ["top_k"] = rules.TopK,
            ["prefix"] = rules.Prefix,
            ["min_length"] = rules.MinLength,
            ["max_length"] = rules.MaxLength,
            ["unique"] = rules.Unique,
            ["new_only"] = rules.NewOnly,
            ["save"] = s.SavePath,
            ["load"] = s.LoadPath,
            ["score_file"] = s.ScoreFile,
            ["sort"] = s.Sort,
        };
    }
}

// ================================================================================================
// Command line
// ================================================================================================

/// <summary>The options, each with its range written once (help text and error message are made
/// from it), and what follows from the command line: the Settings, or why they cannot be.</summary>
internal sealed class CommandLine
{
    static readonly Settings Default = new();
    static readonly SamplingRules Rules = new();
    static readonly (float LearningRate, int Dim) Bag = Settings.DefaultsFor(ModelKind.Bag), Mlp = Settings.DefaultsFor(ModelKind.Mlp);

    readonly Option<double> seconds = Number("--seconds", "S", "Seconds of training (wall time)", Default.Seconds, 1e-3, Limits.MaxSeconds);
    readonly Option<long?> steps = Optional("--steps", "N", "Train exactly N steps instead of for --seconds (reproducible)", "none", 1L, Limits.MaxSteps);
    readonly Option<int> samples = Number("--samples", "N", "How many names to print", Default.Samples, 0, Limits.MaxSamples);
    readonly Option<long> seed = Number("--seed", "N", "Seed for the split, the initial weights, the batches and the samples", Default.Seed,
        long.MinValue, long.MaxValue, "a whole number that fits in 64 bits", range: "");
    readonly Option<string?> names = File("--names", "Names file, one name a line (UTF-8); - reads standard input [default: the bundled names.txt]");
    readonly Option<ModelKind?> model = new("--model")
    {
        Description = $"The model: mlp (a hidden layer of tanh units) or bag (a bag of embeddings, the seed's) [default: {Report.Name(Default.Model)}]",
        HelpName = "mlp|bag",
        CustomParser = result => Enum.TryParse<ModelKind>(result.Tokens[0].Value, ignoreCase: true, out var kind) && result.Tokens[0].Value.All(char.IsAsciiLetter)
            ? kind : Invalid<ModelKind?>(result, "--model", "mlp or bag", null),
    };
    readonly Option<int> batchSize = Number("--batch-size", "B", "Examples per SGD step", Default.BatchSize, 1, Limits.MaxBatchSize);
    readonly Option<int> context = Number("--context", "K", "Letters of context the model sees", Default.Context, 1, Limits.MaxContext);
    readonly Option<int?> dim = Optional("--dim", "D", "Embedding width", $"{Mlp.Dim} for the MLP, {Bag.Dim} for the bag", 1, Limits.MaxDim);
    readonly Option<int> hidden = Number("--hidden", "H", "Hidden units of the MLP", Default.Hidden, 1, Limits.MaxHidden);
    readonly Option<float?> lr = Optional("--lr", "R", "SGD learning rate; it rises from a tenth over the first twentieth of the run, and the last fifth runs at a tenth",
        $"{Mlp.LearningRate.ToString(CultureInfo.InvariantCulture)} for the MLP, {Bag.LearningRate.ToString(CultureInfo.InvariantCulture)} for the bag",
        float.Epsilon, (float)Limits.MaxLearningRate, $"a positive number up to {Limits.MaxLearningRate:N0}", $"up to {Limits.MaxLearningRate:N0}");
    readonly Option<int?> threads = Optional("--threads", "N", $"Threads to train on; a batch of S shards keeps at most S busy, and the result is the same for any number",
        $"every core, {Environment.ProcessorCount} here", 1, Limits.MaxThreads);
    readonly Option<bool> orderBlind = new("--order-blind") { Description = "The bag with one embedding per letter, shared by every position, so that letter order is ignored (the seed's model)" };
    readonly Option<float> temperature = Number("--temperature", "T", "Sampling temperature: lower is safer, higher is wilder", Rules.Temperature,
        (float)Limits.MinTemperature, (float)Limits.MaxTemperature);
    readonly Option<int?> topK = Optional("--top-k", "N", "Sample only from the N most likely next letters", "all", 1, Limits.MaxTopK);
    readonly Option<string> prefix = new("--prefix") { Description = "Every name starts with TEXT", HelpName = "TEXT", DefaultValueFactory = _ => Rules.Prefix };
    readonly Option<int> minLength = Number("--min-length", "N", "Shortest name to print, in letters", Rules.MinLength, 1, Limits.MaxNameLength);
    readonly Option<int> maxLength = Number("--max-length", "N", "Longest name to print, in letters", Rules.MaxLength, 1, Limits.MaxNameLength);
    readonly Option<bool> unique = new("--unique") { Description = "Never print the same name twice" };
    readonly Option<bool> newOnly = new("--new-only") { Description = "Print only names that are not in the training data" };
    readonly Option<string?> save = File("--save", "Save the trained model to FILE");
    readonly Option<string?> load = File("--load", "Use a model saved with --save, without training");
    readonly Option<string[]> score = new("--score")
    {
        Description = "Score these names letter by letter instead of sampling: how surprising each letter is to the model",
        HelpName = "NAME...", AllowMultipleArgumentsPerToken = true,
    };
    readonly Option<string?> scoreFile = File("--score-file", "Score the names in FILE, one a line (- reads standard input)");
    readonly Option<bool> sort = new("--sort") { Description = "Order the scores from the most name-like to the least" };
    readonly Option<bool> json = new("--json") { Description = "Print one JSON object instead of text" };

    public RootCommand Root { get; }
    readonly Option[] trainingOnly, samplingOnly; // what --load and --score leave out

    public CommandLine()
    {
        Root = new RootCommand("BabyNames: trains a tiny character-level language model for about a second, then invents names.")
        {
            seconds, steps, samples, seed, names, model, batchSize, context, dim, hidden, lr, threads, orderBlind,
            temperature, topK, prefix, minLength, maxLength, unique, newOnly, save, load, score, scoreFile, sort, json,
        };
        trainingOnly = [names, model, batchSize, context, dim, hidden, lr, orderBlind, seconds, steps, threads];
        samplingOnly = [samples, temperature, topK, prefix, minLength, maxLength, unique, newOnly];
    }

    public Settings Read(ParseResult parsed) => new(
        parsed.GetValue(seconds), parsed.GetValue(steps), parsed.GetValue(samples), parsed.GetValue(seed),
        parsed.GetValue(names), parsed.GetValue(model) ?? Default.Model, parsed.GetValue(batchSize), parsed.GetValue(context),
        parsed.GetValue(dim), parsed.GetValue(hidden), parsed.GetValue(lr), parsed.GetValue(orderBlind), parsed.GetValue(threads),
        new SamplingRules(parsed.GetValue(temperature), parsed.GetValue(topK), Names.Normalize(parsed.GetValue(prefix)!),
            parsed.GetValue(minLength), parsed.GetValue(maxLength), parsed.GetValue(unique), parsed.GetValue(newOnly)),
        parsed.GetValue(save), parsed.GetValue(load), parsed.GetValue(json),
        Given(parsed, score) ? parsed.GetValue(score) : null, parsed.GetValue(scoreFile), parsed.GetValue(sort));

    /// <summary>Why these settings do not go together, or null if they do.</summary>
    public string? Conflict(ParseResult parsed, Settings s)
    {
        string? Unused(Option[] options, string why) => options.Where(o => Given(parsed, o)).Select(o => $"{o.Name} {why}").FirstOrDefault();
        return (s.LoadPath is not null ? Unused(trainingOnly, "is for training, and --load uses a saved model without training") : null)
            ?? (s.ScoresNames ? Unused(samplingOnly, "is for sampling, and --score scores names instead") : null)
            ?? ((Option<string?>[])[names, save, load, scoreFile]).Where(o => parsed.GetValue(o) is string path && string.IsNullOrWhiteSpace(path))
                .Select(o => $"{o.Name} needs a file name").FirstOrDefault()
            ?? (s.Rules.MinLength > s.Rules.MaxLength ? "--min-length must not be more than --max-length"
            : Names.Length(s.Rules.Prefix) > s.Rules.MaxLength ? "--prefix is longer than --max-length"
            : Given(parsed, steps) && Given(parsed, seconds) ? "--steps and --seconds do not go together: give one of them"
            : s.OrderBlind && s.Model == ModelKind.Mlp ? "--order-blind is a variant of the bag: give --model bag with it"
            : Given(parsed, hidden) && s.Model == ModelKind.Bag ? "--hidden is for the MLP, and --model bag has no hidden layer"
            : s.Sort && !s.ScoresNames ? "--sort orders scores: give --score or --score-file with it"
            : s.NamesPath == "-" && s.ScoreFile == "-" ? "--names - and --score-file - cannot both read standard input: give one of them a file"
            : null);
    }

    static bool Given(ParseResult parsed, Option option) => parsed.GetResult(option) is { Implicit: false };

    /// <summary>An option at the end of the line, or followed by another of our options, has no
    /// value: say so, rather than take the next option as its value ("--save --json").</summary>
    public string? MissingValue(string[] args)
    {
        var takesValue = Root.Options.Where(o => o.Arity.MinimumNumberOfValues > 0).ToDictionary(o => o.Name, o => o.HelpName ?? "a value");
        var known = Root.Options.SelectMany(o => o.Aliases.Append(o.Name)).ToHashSet();
        for (int i = 0; i < args.Length && args[i] != "--"; i++)
            if (takesValue.TryGetValue(args[i], out var what) && (i + 1 == args.Length || known.Contains(args[i + 1])))
                return $"{args[i]} needs a value ({what})";
        return null;
    }

    static Option<string?> File(string name, string description) => new(name) { Description = description, HelpName = "FILE" };

    /// <summary>A numeric option whose range goes into its help text and into the message for a
    /// value outside it: "--batch-size must be a whole number from 1 to 65,536, got '0'". `range`
    /// overrides the help text's range ("" for none), `requirement` the message's.</summary>
    static Option<T> Number<T>(string name, string helpName, string description, T defaultValue, T min, T max,
        string? requirement = null, string? range = null) where T : struct, INumber<T> =>
        new(name)
        {
            Description = Describe(description, range ?? Range(min, max), null),
            HelpName = helpName,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = result => ParseInRange(result, name, min, max, requirement ?? Requirement(min, max)) ?? defaultValue,
        };

    static Option<T?> Optional<T>(string name, string helpName, string description, string byDefault, T min, T max,
        string? requirement = null, string? range = null) where T : struct, INumber<T> =>
        new(name)
        {
            Description = Describe(description, range ?? Range(min, max), byDefault),
            HelpName = helpName,
            CustomParser = result => ParseInRange(result, name, min, max, requirement ?? Requirement(min, max)),
        };

    static string Describe(string description, string range, string? byDefault) =>
        description + (range.Length > 0 ? $", {range}" : "") + (byDefault is null ? "" : $" [default: {byDefault}]");

    static string Range<T>(T min, T max) where T : INumber<T> => string.Format(CultureInfo.InvariantCulture, "{0:#,0.###} to {1:#,0.###}", min, max);

    static string Requirement<T>(T min, T max) where T : INumber<T> =>
        (T.IsInteger(min) && T.IsInteger(max) && typeof(T) != typeof(float) && typeof(T) != typeof(double) ? "a whole number from " : "a number from ") + Range(min, max);

    static T? ParseInRange<T>(System.CommandLine.Parsing.ArgumentResult result, string name, T min, T max, string requirement)
        where T : struct, INumber<T>
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (T.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
            return value;
        return Invalid<T?>(result, name, requirement, null);
    }

    static T Invalid<T>(System.CommandLine.Parsing.ArgumentResult result, string name, string requirement, T fallback)
    {
        result.AddError($"{name} must be {requirement}, got '{(result.Tokens.Count > 0 ? result.Tokens[0].Value : "")}'");
        return fallback;
    }
}

internal static class Program
{
    static int Main(string[] args)
    {
        // Ctrl+C during training ends it early, and the run still saves and samples; at any other
        // time, or a second time, it quits at once (exit code 130) and saves nothing.
        using var stop = new CancellationTokenSource();
        int training = 0;
        ConsoleCancelEventHandler onCtrlC = (_, e) =>
        {
            e.Cancel = Volatile.Read(ref training) == 1 && !stop.IsCancellationRequested;
            stop.Cancel();
        };
        Console.CancelKeyPress += onCtrlC;
        // Console.Out writes through at every call: a million lines of scores want a buffer
        using var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false), 1 << 16);
        try { return Run(args, stdout, Console.Error, stop.Token, started => Volatile.Write(ref training, started ? 1 : 0)); }
        finally { Console.CancelKeyPress -= onCtrlC; }
    }

    /// <summary>The whole program: 0 on success, 1 for bad data or a failed run, 2 for a bad
    /// command line, 130 when interrupted before training. Every failure is one line on stderr
    /// (output that was made before it, such as samples, still goes to stdout).</summary>
    internal static int Run(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken stop = default,
        Action<bool>? training = null)
    {
        int Usage(string problem)
        {
            stderr.WriteLine($"error: {problem} (see --help)");
            return 2;
        }
        var line = new CommandLine();
        line.Root.SetAction(parsed =>
        {
            var settings = line.Read(parsed);
            return line.Conflict(parsed, settings) is string problem ? Usage(problem) : Execute(settings, stdout, stderr, stop, training);
        });
        if (line.MissingValue(args) is string missing) return Usage(missing);
        // no response files: "--names @list.txt" means the file called @list.txt
        var result = line.Root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (result.Errors.Count > 0)
            return Usage(result.UnmatchedTokens.FirstOrDefault() is string token
                ? token.StartsWith('-') ? $"unknown option '{token}'" : $"unexpected argument '{token}'"
                : result.Errors[0].Message.TrimEnd('.'));
        try
        {
            int code = result.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
            stdout.Flush();
            return code;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) // a full disk, a closed output
        {
            try { stderr.WriteLine($"error: cannot write the output: {e.Message}"); }
            catch (Exception again) when (again is IOException or UnauthorizedAccessException) { } // nowhere left to say it
            return 1;
        }
    }

    static int Execute(Settings settings, TextWriter stdout, TextWriter stderr, CancellationToken stop, Action<bool>? training)
    {
        try
        {
            bool live = !settings.Json && ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected;
            var outcome = Runner.Run(settings, stop, live ? stderr : null, training);
            if (settings.Json) Report.Json(outcome, stdout); else Report.Text(outcome, stdout);
            stdout.Flush();
            if (settings.Json && outcome.SavedTo is string saved) stderr.WriteLine($"Saved model to {saved}");
            var failures = outcome.Failures().ToList();
            foreach (var failure in failures) stderr.WriteLine($"error: {failure}");
            return failures.Count > 0 ? 1 : 0;
        }
        catch (UserError e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return e.ExitCode;
        }
        catch (OutOfMemoryException)
        {
            stderr.WriteLine("error: out of memory; use smaller sizes or a shorter names file");
            return 1;
        }
        catch (Exception e) when (e is not (IOException or UnauthorizedAccessException)) // a bug of ours: still one line, and no stack trace
        {
            stderr.WriteLine($"error: internal error ({e.GetType().Name}: {e.Message}); please report it");
            return 1;
        }
    }
}
