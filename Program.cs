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
//   B  examples in a batch            n  examples in one call of a primitive (a shard's, or fewer)
//   S  shards a batch is cut into     K  letters of context a model sees
//   V  letters, the boundary included D  embedding width        H  hidden units (the MLP)
//   A "p" rounds a size up to whole vectors of 16 floats (Vp, Dp, Hp); the padding stays zero.
//   Vr is V rounded up to 4: the rows of the output weights, which matmul's backward takes 4 at a time.

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

namespace BabyNames;

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
/// Data and owns its Grad, so that the shards of a batch can backpropagate side by side.</summary>
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
    public const int RowBlock = 4;      // matmul forward: examples that share each load of Wᵀ
    public const int WeightBlock = 4;   // matmul backward: rows of W held in registers for a sweep
    public const int LogBlock = 64;     // softmax: examples whose sums share one log

    public static int RoundUp(int size) => (size + Lanes - 1) / Lanes * Lanes;

    /// <summary>The width of matmul's Wᵀ for a W of `rows` rows: whole pairs of vectors.</summary>
    public static int TransposedWidth(int rows) => (rows + 2 * Lanes - 1) / (2 * Lanes) * 2 * Lanes;

    // The kernels index their buffers without bounds checks, so each primitive checks the shapes
    // it is given (once per call) before it runs them.
    static void Require(bool shapesFit, string primitive)
    {
        if (!shapesFit) throw new ArgumentException($"{primitive}: the buffers do not have the shapes it needs");
    }

    /// <summary>Rows of a table for each context: out[b,k] = table[k·stride + ids[b,k]], (n,K)
    /// letters → (n,K,D). Stride V gives every context position rows of its own; stride 0 shares
    /// one row per letter.</summary>
    public static Node<float[]> GatherRows(Param table, int[] ids, int n, int K, int stride, float[] output)
    {
        int D = table.Cols, lastId = table.Rows - 1 - (K - 1) * stride;
        Require(lastId >= 0 && ids.Length >= n * K && output.Length >= n * K * D
            && ids.AsSpan(0, n * K).IndexOfAnyExceptInRange(0, lastId) < 0, "GatherRows");
        Forward(table.Data, ids, n, K, stride, D, output);
        return new(output, g => Backward(g, ids, n, K, stride, D, table.Grad));

        // out[b,k] = table[k·stride + ids[b,k]]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Forward(float[] table, int[] ids, int n, int K, int stride, int D, float[] output)
        {
            fixed (float* t = table, o = output)
                for (int b = 0, i = 0; b < n; b++)
                    for (int k = 0; k < K; k++, i++)
                    {
                        float* row = t + (k * stride + ids[i]) * D;
                        for (int d = 0; d < D; d += Lanes) Vector512.Load(row + d).Store(o + i * D + d);
                    }
        }

        // grad[k·stride + ids[b,k]] += g[b,k]: a row used more than once receives the sum of its gradients
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Backward(float[] g, int[] ids, int n, int K, int stride, int D, float[] grad)
        {
            fixed (float* gp = g, t = grad)
                for (int b = 0, i = 0; b < n; b++)
                    for (int k = 0; k < K; k++, i++)
                    {
                        float* row = t + (k * stride + ids[i]) * D;
                        for (int d = 0; d < D; d += Lanes) (Vector512.Load(row + d) + Vector512.Load(gp + i * D + d)).Store(row + d);
                    }
        }
    }

    /// <summary>(n,K,D) → (n,D): the sum over the K context positions. The gradient flows back
    /// unchanged to every position.</summary>
    public static Node<float[]> SumOverK(Node<float[]> x, int n, int K, int D, float[] output, float[] gradX)
    {
        Require(D % Lanes == 0 && x.Value.Length >= n * K * D && gradX.Length >= n * K * D && output.Length >= n * D, "SumOverK");
        Forward(x.Value, n, K, D, output);
        return new(output, g =>
        {
            Backward(g, n, K, D, gradX);
            x.Back(gradX);
        });

        // out[b] = Σ_k x[b,k]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Forward(float[] x, int n, int K, int D, float[] output)
        {
            fixed (float* xp = x, o = output)
                for (int b = 0; b < n; b++)
                    for (int d = 0; d < D; d += Lanes)
                    {
                        float* column = xp + b * K * D + d;
                        var sum = Vector512.Load(column);
                        for (int k = 1; k < K; k++) sum += Vector512.Load(column + k * D);
                        sum.Store(o + b * D + d);
                    }
        }

        // gradX[b,k] = g[b]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Backward(float[] g, int n, int K, int D, float[] gradX)
        {
            fixed (float* gp = g, gx = gradX)
                for (int b = 0; b < n; b++)
                    for (int d = 0; d < D; d += Lanes)
                    {
                        var gb = Vector512.Load(gp + b * D + d);
                        for (int k = 0; k < K; k++) gb.Store(gx + (b * K + k) * D + d);
                    }
        }
    }

    /// <summary>y = tanh(x + bias) for the (n,D) rows of x; its backpropagator: dx = g·(1 − y²),
    /// and dbias += Σ_b dx. The bias is added here rather than in matmul, so that both forms of
    /// the MLP's first layer (see Model) end in the same brick.</summary>
    public static Node<float[]> Tanh(Node<float[]> x, Param bias, int n, float[] output, float[] gradX)
    {
        int D = bias.Cols;
        Require(bias.Rows == 1 && x.Value.Length >= n * D && output.Length >= n * D && gradX.Length >= n * D, "Tanh");
        Forward(x.Value, bias.Data, n, D, output);
        return new(output, g =>
        {
            Backward(g, output, n, D, gradX, bias.Grad);
            x.Back(gradX);
        });

        // y[b] = tanh(x[b] + bias)
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Forward(float[] x, float[] bias, int n, int D, float[] output)
        {
            fixed (float* xp = x, bp = bias, y = output)
                for (int b = 0; b < n; b++)
                    for (int d = 0; d < D; d += Lanes)
                        TanhOf(Vector512.Load(xp + b * D + d) + Vector512.Load(bp + d)).Store(y + b * D + d);
        }

        // dx[b] = g[b]·(1 − y[b]²),  dbias += Σ_b dx[b]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Backward(float[] g, float[] y, int n, int D, float[] gradX, float[] biasGrad)
        {
            fixed (float* gp = g, yp = y, dx = gradX, db = biasGrad)
                for (int d = 0; d < D; d += Lanes)
                {
                    var sum = Vector512.Load(db + d);
                    for (int b = 0; b < n; b++)
                    {
                        var yb = Vector512.Load(yp + b * D + d);
                        var gx = Vector512.Load(gp + b * D + d) * Vector512.FusedMultiplyAdd(-yb, yb, Vector512<float>.One);
                        gx.Store(dx + b * D + d);
                        sum += gx;
                    }
                    sum.Store(db + d);
                }
        }
    }

    /// <summary>h times W's transpose, plus a bias if there is one: out = h·Wᵀ + bias, (n,D) and
    /// (R,D) → (n,Rp). R is a multiple of WeightBlock; W's rows past the real ones are zero, and so
    /// are their outputs. With G groups, W (R,G·D) is cut into G column blocks W_g of width D and h
    /// meets each: out[g·n + b] = h[b]·W_gᵀ, (G·n,Rp). That is how the MLP's table multiplies every
    /// letter by every context position's block of W1 at once.</summary>
    public static Node<float[]> MatMul(Node<float[]> h, Param W, Param? bias, int n, int groups,
        float[] wT, float[] output, float[] gradH)
    {
        int D = W.Cols / groups, Rp = RoundUp(W.Rows);
        Require(groups >= 1 && D * groups == W.Cols && D % Lanes == 0 && W.Rows % WeightBlock == 0
            && (bias is null || (bias.Rows == 1 && bias.Cols == Rp))
            && h.Value.Length >= n * D && gradH.Length >= n * D && wT.Length >= W.Cols * TransposedWidth(W.Rows)
            && output.Length >= groups * n * Rp, "MatMul");
        Forward(h.Value, W, bias?.Data, n, groups, wT, output);
        return new(output, g =>
        {
            Backward(g, h.Value, W, bias?.Grad, n, groups, gradH);
            h.Back(gradH);
        });

        // out[g·n + b, j] = bias[j] + Σ_d h[b,d]·Wᵀ[g·D + d, j]
        // With Wᵀ a vector of 16 outputs is a sum of broadcasts of h times rows of Wᵀ: no horizontal
        // sums. A block of RowBlock examples and two vectors of outputs keeps eight independent
        // chains of multiply-adds in registers, enough to keep the multiply-add units busy, and
        // each broadcast of h feeds two of them. Wᵀ's rows are padded to whole pairs of vectors
        // (with zeros), so an odd last vector is computed as a pair too, and its second half dropped.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Forward(float[] h, Param W, float[]? bias, int n, int groups, float[] wT, float[] output)
        {
            int D = W.Cols / groups, Rp = RoundUp(W.Rows), Rw = TransposedWidth(W.Rows);
            fixed (float* hp = h, wp = W.Data, wt = wT, bp = bias, o = output)
            {
                for (int r = 0; r < Rw; r += Lanes)
                    for (int c = 0; c < W.Cols; c += Lanes)
                        TransposeBlock(wp + r * W.Cols + c, W.Cols, Math.Min(Lanes, W.Rows - r), wt + c * Rw + r, Rw);
                for (int g = 0; g < groups; g++)
                    for (int b = 0; b < n; b += RowBlock)
                    {
                        // A last block of fewer than RowBlock examples reads its last row again in
                        // place of the missing ones, so that every read stays inside h, and stores
                        // only its own rows.
                        int last = Math.Min(RowBlock - 1, n - 1 - b);
                        int r1 = Math.Min(1, last) * D, r2 = Math.Min(2, last) * D, r3 = last * D;
                        for (int j = 0; j < Rp; j += 2 * Lanes)
                        {
                            bool pair = j + Lanes < Rp;
                            var a0 = bp is null ? Vector512<float>.Zero : Vector512.Load(bp + j);
                            var c0 = bp is null || !pair ? Vector512<float>.Zero : Vector512.Load(bp + j + Lanes);
                            var (a1, a2, a3, c1, c2, c3) = (a0, a0, a0, c0, c0, c0);
                            float* x = hp + b * D, column = wt + g * D * Rw + j;
                            for (int d = 0; d < D; d++, x++, column += Rw)
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
                            float* row = o + (g * n + b) * Rp + j;
                            for (int i = 0; i <= last; i++, row += Rp)
                            {
                                left[i].Store(row);
                                if (pair) right[i].Store(row + Lanes);
                            }
                        }
                    }
            }
        }

        // dh[b,d] = Σ_g Σ_r g[g·n + b, r]·W[r, g·D + d],   dW[r, g·D + d] += Σ_b g[g·n + b, r]·h[b,d],
        // dbias[r] += Σ over every row of g[row, r].
        // One sweep over the batch per block of WeightBlock rows of W gives dh and dW: the block's
        // rows of W and their gradient sums stay in registers for the whole sweep, and each
        // broadcast g feeds both products.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Backward(float[] g, float[] h, Param W, float[]? biasGrad, int n, int groups, float[] gradH)
        {
            int D = W.Cols / groups, Rp = RoundUp(W.Rows), C = W.Cols;
            fixed (float* gp = g, hp = h, wp = W.Data, gw = W.Grad, bg = biasGrad, dh = gradH)
            {
                for (int c = 0; c < C; c += Lanes) // 16 columns of W, in group c / D
                {
                    int group = c / D, d = c % D;
                    for (int r = 0; r < W.Rows; r += WeightBlock)
                    {
                        float* wr = wp + r * C + c;
                        var (w0, w1, w2, w3) = (Vector512.Load(wr), Vector512.Load(wr + C), Vector512.Load(wr + 2 * C), Vector512.Load(wr + 3 * C));
                        var (a0, a1, a2, a3) = (Vector512<float>.Zero, Vector512<float>.Zero, Vector512<float>.Zero, Vector512<float>.Zero);
                        bool first = group == 0 && r == 0; // the first contribution to dh overwrites it
                        float* gb = gp + group * n * Rp + r, hb = hp + d, dhb = dh + d;
                        for (int b = 0; b < n; b++, gb += Rp, hb += D, dhb += D)
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
                        float* gwr = gw + r * C + c;
                        (Vector512.Load(gwr) + a0).Store(gwr);
                        (Vector512.Load(gwr + C) + a1).Store(gwr + C);
                        (Vector512.Load(gwr + 2 * C) + a2).Store(gwr + 2 * C);
                        (Vector512.Load(gwr + 3 * C) + a3).Store(gwr + 3 * C);
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
            && targets.Length >= n && targets.AsSpan(0, n).IndexOfAnyExceptInRange(0, V - 1) < 0, "SoftmaxCrossEntropy");
        float loss = Forward(logits.Value, targets, n, V, probs);
        return new(loss, g =>
        {
            Backward(g, probs, targets, n, V, gradLogits);
            logits.Back(gradLogits);
        });

        // probs[b] = softmax(logits[b]), zero in the padding columns; loss = mean of −log probs[b, target].
        // Σ_b log z_b is taken as log Π z_b, one log per LogBlock examples instead of one each:
        // with the maximum subtracted every z_b is between 1 and V ≤ 256, so the product of 64 of
        // them fits in a double.
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
    /// <remarks>EXP_WHY</remarks>
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

/// <summary>A problem with what the user gave us: reported as one line, with this exit code.</summary>
internal sealed class UserError(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>Every limit the program has, in one place; README's "Errors and limits" lists them.</summary>
internal static class Limits
{
    public const int MaxNameLength = 50;        // letters; also where sampling stops
    public const int MaxVocabulary = 256;       // distinct letters, the boundary included: an id fits in a byte
    public const int MaxNames = 5_000_000;
    public const long MaxFileBytes = 256L << 20; // a names file
    public const long MaxBufferBytes = 1L << 30; // all of a model's tables and step buffers
    public const int MaxContext = 16;
    public const int MaxDim = 1024;
    public const int MaxHidden = 1024;
    public const int MaxThreads = 256;
}

/// <summary>The letters that occur in the names, plus one boundary token (id 0) that stands
/// before a name's first letter and after its last.</summary>
internal sealed class Vocabulary
{
    public const int Boundary = 0;
    // code points, rather than Runes: the framework comes with the int collections compiled,
    // which saves start-up time
    readonly int[] symbols;             // id → code point
    readonly Dictionary<int, int> ids;  // code point → id

    public Vocabulary(IEnumerable<string> names)
    {
        var seen = new HashSet<int>();
        foreach (var name in names) foreach (var r in name.EnumerateRunes()) seen.Add(r.Value);
        int[] letters = [.. seen];
        Array.Sort(letters);
        symbols = ['.', .. letters];
        ids = new Dictionary<int, int>(symbols.Length);
        for (int i = 1; i < symbols.Length; i++) ids[symbols[i]] = i;
    }

    public Vocabulary(IEnumerable<Rune> letters) : this(letters.Select(c => c.ToString())) { }

    public int Size => symbols.Length;

    /// <summary>The letters, in id order, the boundary left out.</summary>
    public IEnumerable<Rune> Letters => symbols.Skip(1).Select(c => new Rune(c));

    /// <summary>How a letter is shown: the boundary as '.'.</summary>
    public string Show(int id) => new Rune(symbols[id]).ToString();

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
        return length >= 0 ? buffer[..length].ToArray() : throw new UserError(1, $"'{unknown}' is not a letter of the names");
    }

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

    public ReadOnlySpan<byte> Context(int i) => Tokens.AsSpan(i * (K + 1), K);

    public int Next(int i) => Tokens[i * (K + 1) + K];

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
            if (length < 0) throw new UserError(1, $"'{unknown}' is not a letter of the names");
            for (int t = 0; t <= length; t++, i++)
            {
                var example = Tokens.AsSpan(i * (K + 1), K + 1);
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
// order-blind variant, the original seed's model, shares one row per letter. In the step buffers
// below, a shape names its size letters; n is at most the shard's Count.

internal enum ModelKind { Bag = 0, Mlp = 1 } // as model files number them

/// <summary>Allocates a model's tables and step buffers, counting each against
/// Limits.MaxBufferBytes before it is allocated.</summary>
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
            throw new UserError(2, $"these sizes need more than the {Limits.MaxBufferBytes >> 20} MB of buffers a model may have; use a smaller --batch-size, --context, --dim or --hidden");
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
    public bool Positional { get; }     // false only for the bag's order-blind variant
    public int BatchSize { get; }
    public int Vp => Ops.RoundUp(V);
    public int Vr => (V + Ops.WeightBlock - 1) / Ops.WeightBlock * Ops.WeightBlock;
    public int Dp => Ops.RoundUp(D);
    public int Hp => Ops.RoundUp(H);
    public bool UsesTable { get; }      // the MLP's first layer as a table (B > V), else per example

    public Param Embedding { get; }     // E: (K·V,Dp) with rows per position, else (V,Dp)
    public Param? Hidden { get; }       // W1: (Hp,K·Dp), the MLP's first layer
    public Param? HiddenBias { get; }   // b1: (1,Hp)
    public Param Output { get; }        // W: (Vr,Dp) in the bag, (Vr,Hp) in the MLP
    public Param OutputBias { get; }    // b: (1,Vp)
    public Param[] Params { get; } // what SGD trains, in model-file order
    public Shard[] Shards { get; } = [];
    public int ShardCount => Math.Clamp(BatchSize / ShardExamples, 1, MaxShards);

    // The MLP's table T (K·V,Hp), computed from E and W1 and never trained itself; the scratch of
    // its matmul: W1ᵀ (K·Dp,Hp), and T's gradient passed on to E (V,Dp).
    readonly Param? table;
    readonly float[]? hiddenT, gradTableE;
    bool tableIsCurrent;
    // the Params the shards write: T in place of E and W1 when there is a table
    internal Param[] Sharded { get; }
    internal Buffers Memory { get; } = new();

    public Model(ModelKind kind, int V, int K, int D, int H, bool positional, int batchSize, Rng rng)
        : this(kind, V, K, D, H, positional, batchSize)
    {
        Initialize(rng);
        Shards = [.. Enumerable.Range(0, ShardCount).Select(s => new Shard(this, s))];
    }

    // the tables of a model of these sizes, all zero, and no shards
    Model(ModelKind kind, int V, int K, int D, int H, bool positional, int batchSize)
    {
        bool mlp = kind == ModelKind.Mlp;
        (Kind, this.V, this.K, this.D, this.H, Positional, BatchSize) = (kind, V, K, D, mlp ? H : 0, mlp || positional, batchSize);
        UsesTable = mlp && batchSize > V;
        Embedding = Memory.Param(Positional && !mlp ? K * V : V, Dp);
        if (mlp)
        {
            Hidden = Memory.Param(Hp, K * Dp);
            HiddenBias = Memory.Param(1, Hp);
        }
        Output = Memory.Param(Vr, mlp ? Hp : Dp);
        OutputBias = Memory.Param(1, Vp);
        Params = mlp ? [Embedding, Hidden!, HiddenBias!, Output, OutputBias] : [Embedding, Output, OutputBias];
        if (UsesTable)
        {
            table = Memory.Param(K * V, Hp);
            hiddenT = Memory.Floats((long)K * Dp * Ops.TransposedWidth(Hp));
            gradTableE = Memory.Floats(V * Dp);
        }
        Sharded = !mlp ? [Embedding, Output, OutputBias]
            : UsesTable ? [table!, HiddenBias!, Output, OutputBias] : [Embedding, Hidden!, HiddenBias!, Output, OutputBias];
    }

    /// <summary>A model of the same sizes with a copy of the weights and no shards: what every
    /// further thread of a training run trains (see Training).</summary>
    public Model Clone()
    {
        var copy = new Model(Kind, V, K, D, H, Positional, BatchSize);
        copy.LoadWeights([.. Params.Select(p => p.Data)]);
        return copy;
    }

    public Param? Table => table; // T, when the MLP has one

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
            Fill(Output, V, D, () => rng.NextDouble() - 0.5);
            return;
        }
        // The embeddings start as N(0,1), so each unit's input x·W1ᵀ (K·D terms) has a standard
        // deviation of 5/3 with W1 ~ N(0,1)·(5/3)/√(K·D): the gain usual for tanh, which uses its
        // curve without saturating it. A small output layer makes the first predictions nearly
        // uniform, so that the first loss is about ln V rather than a confident mistake.
        Fill(Embedding, V, D, rng.NextNormal);
        double scale = 5.0 / 3 / Math.Sqrt(K * D);
        for (int h = 0; h < H; h++)
            for (int k = 0; k < K; k++)
                for (int d = 0; d < D; d++) Hidden!.Data[h * Hidden.Cols + k * Dp + d] = (float)(rng.NextNormal() * scale);
        Fill(HiddenBias!, 1, H, () => rng.NextNormal() * 0.01);
        Fill(Output, V, H, () => rng.NextNormal() * 0.01);
    }

    /// <summary>Scores for the next letter of a shard's first n examples, (n,Vp), the first V of
    /// each row real. The model's three compositions, as the section's header writes them.</summary>
    public Node<float[]> Logits(Shard s, int n)
    {
        if (Kind == ModelKind.Bag)
        {
            var rows = Ops.GatherRows(s.E!, s.Contexts, n, K, Positional ? V : 0, s.Gathered); // (n,K,Dp)
            var context = Ops.SumOverK(rows, n, K, Dp, s.Hidden, s.GradGathered);            // (n,Dp)
            return Ops.MatMul(context, s.W, s.B, n, 1, s.OutputT, s.Logits, s.GradHidden);    // (n,Vp)
        }
        Node<float[]> firstLayer;
        if (UsesTable)
        {
            if (!tableIsCurrent) MakeTable(); // the weights changed since T was made
            var rows = Ops.GatherRows(s.T!, s.Contexts, n, K, V, s.Gathered);                // (n,K,Hp)
            firstLayer = Ops.SumOverK(rows, n, K, Hp, s.PreActivation, s.GradGathered);       // (n,Hp)
        }
        else
        {
            var x = Ops.GatherRows(s.E!, s.Contexts, n, K, 0, s.Gathered);                   // (n,K·Dp)
            firstLayer = Ops.MatMul(x, s.W1!, null, n, 1, s.HiddenT!, s.PreActivation, s.GradGathered); // (n,Hp)
        }
        var hidden = Ops.Tanh(firstLayer, s.B1!, n, s.Hidden, s.GradPreActivation);           // (n,Hp)
        return Ops.MatMul(hidden, s.W, s.B, n, 1, s.OutputT, s.Logits, s.GradHidden);         // (n,Vp)
    }

    public Node<float> Loss(Shard s, int n) => Ops.SoftmaxCrossEntropy(Logits(s, n), s.Targets, n, V, s.Probs, s.GradLogits);

    /// <summary>Makes the MLP's table for the current E and W1: T = matmul(E, W1) in K groups,
    /// (K·V,Hp), whose backpropagator takes T's gradient on to E and W1. Null without a table.</summary>
    public Node<float[]>? MakeTable()
    {
        if (table is null) return null;
        tableIsCurrent = true;
        return Ops.MatMul(Embedding.AsNode(), Hidden!, null, V, K, hiddenT!, table.Data, gradTableE!);
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
        tableNode.Back(table!.Grad);
        table.ZeroGrad();
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
    /// products each), at the real sizes; the table's, made once a step, shared by the batch.</summary>
    public double MultiplyAddsPerExample => Kind == ModelKind.Bag ? 3.0 * D * V
        : UsesTable ? 3.0 * ((double)K * V * D * H / BatchSize + H * V)
        : 3.0 * ((double)K * D * H + H * V);
}

/// <summary>One slice of a batch, with everything its forward and backward passes write: its
/// examples, its step buffers, and its gradients (replicas of the Params it uses, which share
/// their Data; or the Params themselves, when a batch is a single shard).</summary>
internal sealed class Shard
{
    public int Offset { get; }          // where in the batch its examples start
    public int Count { get; }           // how many it holds: n is at most this
    public int K { get; }
    public int[] Contexts { get; }      // (n,K) letter ids, oldest first
    public int[] Targets { get; }       // (n)
    public Param[] Own { get; }         // its version of each Param the shards write
    public Param? E, W1, B1, T;         // those versions by name (null where the model has none)
    public Param W, B;
    public float[] Gathered, GradGathered;          // (n,K,Dp), or (n,K,Hp) from the MLP's table
    public float[] PreActivation, GradPreActivation; // (n,Hp): the MLP's first layer before tanh
    public float[] Hidden, GradHidden;              // (n,Dp) or (n,Hp): what the output layer reads
    public float[] OutputT;                         // Wᵀ (Dp or Hp,Vp rounded up to 32), made by matmul
    public float[]? HiddenT;                        // W1ᵀ (K·Dp,Hp rounded up to 32), the MLP per example
    public float[] Logits, Probs, GradLogits;       // (n,Vp)

    /// <summary>Shard `index` of the model's ShardCount: its slice of the batch, its buffers, and,
    /// when there are several shards, replicas of the Params it writes.</summary>
    public Shard(Model m, int index)
    {
        int S = m.ShardCount;
        (Offset, Count, K) = (m.BatchSize * index / S, m.BatchSize * (index + 1) / S - m.BatchSize * index / S, m.K);
        var memory = m.Memory;
        Own = S > 1 ? [.. m.Sharded.Select(memory.Replica)] : m.Sharded;
        Param? Mine(Param? p)
        {
            int i = p is null ? -1 : Array.IndexOf(m.Sharded, p);
            return i < 0 ? null : Own[i];
        }
        (E, W1, B1, T, W, B) = (Mine(m.Embedding), Mine(m.Hidden), Mine(m.HiddenBias), Mine(m.Table), Mine(m.Output)!, Mine(m.OutputBias)!);
        int gatheredWidth = m.UsesTable ? m.Hp : m.Dp, hiddenWidth = m.Output.Cols;
        Contexts = memory.Ints((long)Count * K);
        Targets = memory.Ints(Count);
        Gathered = memory.Floats((long)Count * K * gatheredWidth);
        GradGathered = memory.Floats((long)Count * K * gatheredWidth);
        PreActivation = memory.Floats((long)Count * m.Hp);
        GradPreActivation = memory.Floats((long)Count * m.Hp);
        Hidden = memory.Floats((long)Count * hiddenWidth);
        GradHidden = memory.Floats((long)Count * hiddenWidth);
        OutputT = memory.Floats((long)hiddenWidth * Ops.TransposedWidth(m.Vr));
        if (m.Kind == ModelKind.Mlp && !m.UsesTable) HiddenT = memory.Floats((long)m.K * m.Dp * Ops.TransposedWidth(m.Hp));
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
// A step draws B examples, runs each shard's forward and backward pass (side by side, on as many
// threads as there are, each shard on its own buffers and gradients), adds the shards' gradients up
// in shard order and takes one SGD step. The shards depend only on B, and the additions happen in
// the same order whoever ran them, so a run gives the same result on any number of threads. A few
// times a second the validation loss is measured, and the weights that gave the lowest one are
// what the run ends with: training longer never leaves a worse model.

/// <summary>Threads that do the parts of a piece of work together: started once a run, and
/// Run(work) gives every member its part, work(0) on the calling thread, and returns when all are
/// done. Between pieces the workers keep checking for the next one for a while (the pieces of a
/// training run come microseconds apart), then sleep; Dispose ends them.</summary>
internal sealed class Crew : IDisposable
{
    // Waiting reads the shared counter in a tight loop first: a pause instruction or a yield to
    // the system each cost about a microsecond here, as much as a shard's share of a small step.
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
        try { work(0); }
        finally
        {
            long started = Stopwatch.GetTimestamp();
            for (int i = 1; Volatile.Read(ref pending) > 0; i++)
                if (i % 64 == 0 && Stopwatch.GetTimestamp() - started > TightTicks) Thread.Yield();
        }
        if (Interlocked.Exchange(ref failure, null) is Exception e) ExceptionDispatchInfo.Throw(e);
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
        for (int i = 1; Volatile.Read(ref generation) == seen; i++)
        {
            if (i % 64 != 0) continue;
            long waited = Stopwatch.GetTimestamp() - started;
            if (waited < TightTicks) continue;
            if (waited < SleepTicks)
            {
                Thread.Yield(); // in case there are more threads than cores
                continue;
            }
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

    /// <summary>SGD with weight decay on random batches for `Seconds` of wall time or exactly `Steps` steps, whichever
    /// is given, or until `stop` is cancelled (after at least one step). `progress`, if given, hears
    /// (step, elapsed seconds, loss) a few times a second.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static TrainResult Train(Model model, Examples train, Examples validation, TrainOptions o, Rng rng,
        CancellationToken stop = default, Action<long, double, float>? progress = null)
    {
        using var stepper = new Stepper(model, train, o.Threads, DecayFor(train));
        var best = model.Params.Select(p => new float[p.Data.Length]).ToArray();
        double bestLoss = double.PositiveInfinity, bestTrainLoss = double.NaN;
        long bestStep = 0;
        // with --steps the checks fall on steps that depend only on the sizes, so that the run is
        // reproducible: as many examples between checks as keep their share below CheckShare
        long checkEvery = Math.Max(1, (long)Math.Ceiling(validation.Count * ForwardShare / (CheckShare * model.BatchSize)));
        var curve = new double[CurvePoints];
        var counts = new int[CurvePoints];
        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true), allocatedOutside = 0;
        var clock = Stopwatch.StartNew();
        double elapsed = 0, lastReport = 0, nextCheck = CheckGapSeconds, checkSeconds = 0, stretchLoss = 0;
        long step = 0, stretchSteps = 0, divergedAt = 0;
        int checks = 0;
        float loss;
        while (true)
        {
            double done = o.Steps is long total ? (double)step / total : elapsed / o.Seconds;
            loss = stepper.Step(rng, RateAt(o.LearningRate, done));
            step++;
            if (!float.IsFinite(loss))
            {
                if (checks == 0)
                    throw new UserError(1, $"training diverged at step {step} (loss = {(float.IsNaN(loss) ? "NaN" : "Infinity")}); try a smaller --lr");
                divergedAt = step;
                break;
            }
            int point = Math.Min(CurvePoints - 1, (int)(done * CurvePoints));
            curve[point] += loss;
            counts[point]++;
            stretchLoss += loss;
            stretchSteps++;
            bool finished = (o.Steps is long n && step >= n) || stop.IsCancellationRequested;
            bool check = o.Steps is not null && step % checkEvery == 0;
            // reading the clock every 16 steps keeps it out of the profile, even at tiny batches
            if (step % 16 == 0 || finished)
            {
                elapsed = clock.Elapsed.TotalSeconds;
                finished |= o.Steps is null && elapsed >= o.Seconds;
                check |= o.Steps is null && elapsed >= nextCheck;
                if (progress is not null && elapsed - lastReport >= 0.25)
                {
                    long before = GC.GetAllocatedBytesForCurrentThread();
                    progress(step, elapsed, loss);
                    allocatedOutside += GC.GetAllocatedBytesForCurrentThread() - before;
                    lastReport = elapsed;
                }
            }
            if (check || finished)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                double started = clock.Elapsed.TotalSeconds;
                double validationLoss = Evaluate(model, validation);
                checks++;
                if (validationLoss < bestLoss) // NaN never is
                {
                    (bestLoss, bestStep, bestTrainLoss) = (validationLoss, step, stretchLoss / stretchSteps);
                    model.SaveWeights(best);
                }
                (stretchLoss, stretchSteps) = (0, 0);
                double took = clock.Elapsed.TotalSeconds - started;
                checkSeconds += took;
                nextCheck = started + Math.Max(CheckGapSeconds, took / CheckShare);
                allocatedOutside += GC.GetAllocatedBytesForCurrentThread() - before;
                if (!double.IsFinite(validationLoss) && checks == 1)
                    throw new UserError(1, $"training diverged by step {step} (validation loss = {validationLoss}); try a smaller --lr");
            }
            if (finished) break;
        }
        elapsed = clock.Elapsed.TotalSeconds;
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore - allocatedOutside;
        model.LoadWeights(best);
        var lossCurve = curve.Zip(counts, (sum, count) => count > 0 ? (float)(sum / count) : float.NaN).ToArray();
        return new(step, elapsed, stepper.Threads, (float)bestTrainLoss, bestLoss, bestStep, checks, checkSeconds,
            divergedAt > 0 ? divergedAt : null, allocated / step, lossCurve, stop.IsCancellationRequested);
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
        readonly int[] picks;
        readonly double[] losses;         // each shard's share of the batch's mean loss
        readonly Action<int> forwardAndBack, update;
        readonly float decay;
        float rate;

        public Stepper(Model model, Examples train, int threads, float decay)
        {
            (this.train, this.decay) = (train, decay);
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

        // Every thread has a copy of the model and takes the same steps on it, as data-parallel
        // training on several GPUs does: only the gradients travel between cores, each read once,
        // while a weight written on one core and read on another would cross between their caches
        // a line at a time, on demand.
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

    /// <summary>Mean loss over every example of a set, in batches through the first shard, without
    /// training.</summary>
    public static double Evaluate(Model model, Examples set)
    {
        var shard = model.Shards[0];
        var picks = new int[shard.Count];
        double total = 0;
        for (int start = 0; start < set.Count; start += shard.Count)
        {
            int n = Math.Min(shard.Count, set.Count - start);
            for (int b = 0; b < n; b++) picks[b] = start + b;
            shard.Load(set, picks.AsSpan(0, n));
            total += (double)model.Loss(shard, n).Value * n;
        }
        return total / set.Count;
    }

    /// <summary>The validation loss of the simplest model there is, for comparison: the next
    /// letter's probability given only the previous one, from counts in the training examples
    /// with one added to every count (so that no pair has probability zero).</summary>
    public static double CountBigramLoss(Examples train, Examples validation, int V)
    {
        var counts = new double[V * V];
        counts.AsSpan().Fill(1);
        for (int i = 0; i < train.Count; i++)
            counts[train.Context(i)[^1] * V + train.Next(i)]++;
        var rowSums = Enumerable.Range(0, V).Select(c => counts.AsSpan(c * V, V).ToArray().Sum()).ToArray();
        double total = 0;
        for (int i = 0; i < validation.Count; i++)
        {
            int previous = validation.Context(i)[^1];
            total -= Math.Log(counts[previous * V + validation.Next(i)] / rowSums[previous]);
        }
        return total / validation.Count;
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
    /// <summary>A name that breaks a rule is drawn again; sampling gives up once it has drawn
    /// this many names more than 100 for each one it kept.</summary>
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
        var weights = new double[model.V];
        // one letter past MaxLength is enough to know that a name is too long
        while (name.Count <= rules.MaxLength)
        {
            shard.SetContext(context);
            var logits = model.Logits(shard, 1).Value.AsSpan(0, model.V);
            // only the topK most likely letters may come next (ties broken by id)
            var allowed = Enumerable.Range(0, model.V);
            if (rules.TopK is int k && k < model.V)
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
            for (int c = 0; c < model.V && (next < 0 || u >= 0); c++)
                if (weights[c] > 0)
                {
                    next = c; // if rounding leaves u above 0 at the end, the last allowed letter
                    u -= weights[c];
                }
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
                    : $"the model's names run past {Limits.MaxNameLength} letters; train longer or lower --temperature";
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

/// <summary>A name's surprise in bits, and each letter's (the end of the name last, as '.'); or,
/// for a name that cannot be scored, why.</summary>
internal sealed record NameScore(string Name, double Bits, bool InTraining, (string Letter, double Bits)[] Letters, string? Error)
{
    /// <summary>Bits per letter, the end counted as one: names of different lengths compare.</summary>
    public double BitsPerLetter => Letters.Length == 0 ? double.NaN : Bits / Letters.Length;

    /// <summary>Which letter surprised the model most.</summary>
    public int MostSurprising => Letters.Length == 0 ? -1 : Array.IndexOf(Letters, Letters.MaxBy(l => l.Bits));
}

internal static class Scoring
{
    /// <summary>Scores names, in their order: every letter's probability comes from the same
    /// forward pass as training (in batches through the first shard, no backward pass).</summary>
    public static List<NameScore> Score(Model model, Vocabulary vocab, IReadOnlySet<string> training, IReadOnlyList<string> names)
    {
        var normalized = names.Select(name => Names.Normalize(name)).ToArray();
        var errors = normalized.Select(name => Why(name, vocab)).ToArray();
        var scorable = normalized.Where((_, i) => errors[i] is null).ToList();
        var examples = new Examples(scorable, vocab, model.K);
        var bits = new double[examples.Count];
        var shard = model.Shards[0];
        var picks = new int[shard.Count];
        for (int start = 0; start < examples.Count; start += shard.Count)
        {
            int n = Math.Min(shard.Count, examples.Count - start);
            for (int b = 0; b < n; b++) picks[b] = start + b;
            shard.Load(examples, picks.AsSpan(0, n));
            model.Loss(shard, n); // its probabilities are what we want
            for (int b = 0; b < n; b++) bits[start + b] = -Math.Log2(shard.Probs[b * model.Vp + shard.Targets[b]]);
        }
        var scores = new List<NameScore>(names.Count);
        int next = 0;
        for (int i = 0; i < names.Count; i++)
        {
            if (errors[i] is string error)
            {
                scores.Add(new(normalized[i].Length > 0 ? normalized[i] : names[i], double.NaN, false, [], error));
                continue;
            }
            var ids = vocab.Encode(normalized[i]);
            var letters = new (string, double)[ids.Length + 1];
            for (int t = 0; t <= ids.Length; t++)
                letters[t] = (vocab.Show(t < ids.Length ? ids[t] : Vocabulary.Boundary), bits[next + t]);
            next += ids.Length + 1;
            scores.Add(new(normalized[i], letters.Sum(l => l.Item2), training.Contains(normalized[i]), letters, null));
        }
        return scores;
    }

    static string? Why(string name, Vocabulary vocab)
    {
        if (name.Length == 0) return "an empty name";
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
    const int HashBytes = sizeof(ulong), MaxNameBytes = Limits.MaxNameLength * 4; // UTF-8: 4 bytes a letter at most

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

    /// <summary>"a folder", "a device", "a pipe" or "a socket" for what is at the path (links
    /// followed), or null for a plain file or nothing. .NET has no public way to tell a device or a
    /// pipe from a file; its own native library's stat has the file type in Mode's high bits.</summary>
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
    public static Trained Load(string path, int batchSize)
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
                if (!Enum.IsDefined((ModelKind)kindNumber)) throw Bad("is of a model kind this program does not know");
                (kind, V, K, D, H) = ((ModelKind)kindNumber, r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32());
            }
            bool positional = r.ReadBoolean();
            if (V < 2 || V > Limits.MaxVocabulary || K < 1 || K > Limits.MaxContext || D < 1 || D > Limits.MaxDim
                || (kind == ModelKind.Mlp && (H < 1 || H > Limits.MaxHidden)) || (kind == ModelKind.Bag && H != 0))
                throw Bad("has sizes this program does not accept");
            var letters = new Rune[V - 1];
            for (int i = 0; i < letters.Length; i++)
            {
                int c = r.ReadInt32();
                if (Names.Problem(c) is string problem || c == '.' || (i > 0 && c <= letters[i - 1].Value))
                    throw Bad("has a damaged vocabulary");
                letters[i] = new Rune(c);
            }
            var vocab = new Vocabulary(letters);
            int nameCount = r.ReadInt32();
            long steps = r.ReadInt64(), bestStep = version == FirstVersion ? steps : r.ReadInt64();
            double trainLoss = r.ReadDouble(), validationLoss = r.ReadDouble(), bigramLoss = r.ReadDouble(), meanLength = r.ReadDouble();
            if (!Array.TrueForAll([trainLoss, validationLoss, bigramLoss, meanLength], x => double.IsFinite(x) && x >= 0)
                || steps < 0 || bestStep < 0 || bestStep > steps || nameCount < 2 || nameCount > Limits.MaxNames)
                throw Bad("is damaged");
            int trainingCount = r.ReadInt32();
            if (trainingCount < 0 || trainingCount > nameCount) throw Bad("is damaged");
            var names = new HashSet<string>(trainingCount);
            for (int i = 0; i < trainingCount; i++)
            {
                int length = r.Read7BitEncodedInt();
                if (length < 1 || length > MaxNameBytes) throw Bad("is damaged");
                string name = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(r.ReadBytes(length));
                if (Names.Length(name) > Limits.MaxNameLength || !vocab.Knows(name, out _)) throw Bad("is damaged");
                names.Add(name);
            }
            var model = new Model(kind, V, K, D, H, positional, batchSize, new Rng(0));
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

    /// <summary>Reads a stream, keeping the FNV-1a hash of what has been read, except the last
    /// HashBytes read once the hash has been taken.</summary>
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

/// <summary>Everything the command line decided. Threads null means every core.</summary>
internal sealed record Settings(
    double Seconds = 1, long? Steps = null, int Samples = 20, long Seed = 42, string? NamesPath = null,
    ModelKind Model = ModelKind.Mlp, int BatchSize = 512, int Context = 6, int Dim = 32, int Hidden = 128,
    float LearningRate = 1, bool OrderBlind = false, int? Threads = null, SamplingRules? Rules = null,
    string? SavePath = null, string? LoadPath = null, bool Json = false,
    IReadOnlyList<string>? Score = null, string? ScoreFile = null, bool Sort = false)
{
    public SamplingRules Sampling => Rules ?? new();

    /// <summary>What differs between the models' defaults (README, "The defaults, measured").</summary>
    public static (float LearningRate, int Dim) DefaultsFor(ModelKind model) => model == ModelKind.Mlp ? (1f, 32) : (0.1f, 16);
    public bool Scoring => Score is not null || ScoreFile is not null;
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
        var toScore = s.Scoring ? NamesToScore(s) : null;
        Trained trained;
        TrainResult? result = null;
        double startup = 0;
        if (s.LoadPath is string load)
        {
            trained = ModelFile.Load(load, new Settings().BatchSize);
            if (toScore is null) CheckRules(s, trained.Vocab, trained.TrainingNames);
        }
        else
        {
            var names = Names.Read(s.NamesPath);
            var corpus = Corpus.Split(names, new Rng(s.Seed, SplitStream));
            if (toScore is null) CheckRules(s, corpus.Vocab, corpus.Train);
            var train = new Examples(corpus.Train, corpus.Vocab, s.Context);
            var validation = new Examples(corpus.Validation, corpus.Vocab, s.Context);
            var model = new Model(s.Model, corpus.Vocab.Size, s.Context, s.Dim, s.Hidden, !s.OrderBlind, s.BatchSize, new Rng(s.Seed, InitStream));
            if (stop.IsCancellationRequested) throw new UserError(130, "interrupted before training started; nothing was saved");
            startup = (DateTime.Now - Process.GetCurrentProcess().StartTime).TotalSeconds;
            training?.Invoke(true);
            try
            {
                var options = new TrainOptions(s.LearningRate, s.Seconds, s.Steps, s.Threads ?? Environment.ProcessorCount);
                result = Trainer.Train(model, train, validation, options, new Rng(s.Seed, BatchStream), stop, live is null ? null : Progress(s, live));
            }
            finally
            {
                training?.Invoke(false);
                live?.Write("\r\x1b[K"); // an error after this is one clean line too
            }
            trained = new(model, corpus.Vocab, corpus.Train.ToHashSet(), names.Count, result.Steps, result.BestStep,
                result.TrainLoss, result.ValidationLoss, Trainer.CountBigramLoss(train, validation, corpus.Vocab.Size), names.Average(Names.Length));
            if (live is not null) live.WriteLine($"loss {Sparkline(result.LossCurve)} {result.TrainLoss:F3}");
        }
        string? saveError = null;
        if (saveTo is not null)
            try { ModelFile.Save(trained, saveTo, s.SavePath!); }
            catch (UserError e) { saveError = $"{e.Message}; the model was not saved"; }
        var samples = toScore is null
            ? Sampling.SampleMany(trained.Model, trained.Vocab, new Rng(s.Seed, SampleStream), s.Sampling, s.Samples, trained.TrainingNames)
            : null;
        var scores = toScore is null ? null : Scoring.Score(trained.Model, trained.Vocab, trained.TrainingNames, toScore);
        if (scores is not null && s.Sort) scores = [.. scores.OrderBy(x => x.Error is null ? x.BitsPerLetter : double.PositiveInfinity)];
        return new(s, trained, result, startup, samples, scores, saveError is null ? s.SavePath : null, saveError);
    }

    /// <summary>The names after --score, then the lines of --score-file, blank lines left out.</summary>
    static List<string> NamesToScore(Settings s)
    {
        var names = new List<string>(s.Score ?? []);
        if (s.ScoreFile is string file) names.AddRange(Names.Lines(Names.ReadText(file, out _)).Where(line => !string.IsNullOrWhiteSpace(line)));
        names.RemoveAll(string.IsNullOrWhiteSpace);
        if (names.Count == 0) throw new UserError(2, "no names to score: give them after --score, or one a line in --score-file");
        return names;
    }

    /// <summary>Sampling rules that no model could keep fail now, before any training.</summary>
    static void CheckRules(Settings s, Vocabulary vocab, IEnumerable<string> training)
    {
        var rules = s.Sampling;
        if (!vocab.Knows(rules.Prefix, out var unknown))
            throw new UserError(2, $"--prefix has '{unknown}', which no name in the data has; use only letters from the names");
        if (rules.Unique && rules.Possible(vocab.Size - 1, training) is long possible && possible < s.Samples)
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

    static string Plural(long count, string noun) => $"{count.ToString("N0", Inv)} {noun}{(count == 1 ? "" : "s")}";

    static double ExamplesPerSecond(Outcome o) =>
        o.Training is { Seconds: > 0 } t ? t.Steps * (double)o.Settings.BatchSize / t.Seconds : 0;

    static IReadOnlyList<(string Name, bool InTraining)> SampleList(Outcome o) => o.Samples?.Names ?? [];

    static double NewShare(Outcome o) => SampleList(o) is { Count: > 0 } s ? s.Count(x => !x.InTraining) / (double)s.Count : 0;

    static double MeanLength(Outcome o) => SampleList(o) is { Count: > 0 } s ? s.Average(x => Names.Length(x.Name)) : 0;

    static string Describe(Model m) => m.Kind == ModelKind.Mlp
        ? $"MLP, context {m.K}, width {m.D}, {m.H} hidden units"
        : $"bag of embeddings{(m.Positional ? "" : " (order-blind)")}, context {m.K}, width {m.D}";

    public static string Text(Outcome o)
    {
        var text = new StringBuilder();
        var t = o.Trained;
        text.AppendLine(Inv, $"Model: {Describe(t.Model)}");
        if (o.Training is { } run)
        {
            text.AppendLine(Inv, $"Elapsed: {run.Seconds:F3} seconds{(run.StoppedEarly ? " (stopped early with Ctrl+C)" : "")}");
            text.AppendLine(Inv, $"Steps: {run.Steps:N0} ({ExamplesPerSecond(o) / 1e6:F2} M examples/s on {Plural(run.Threads, "thread")})");
            if (run.DivergedAt is long diverged)
                text.AppendLine(Inv, $"Training diverged at step {diverged:N0}; kept the weights of step {run.BestStep:N0} (a smaller --lr would go further)");
            else if (run.BestStep != run.Steps)
                text.AppendLine(Inv, $"Kept: the weights of step {run.BestStep:N0}, where the validation loss was lowest");
        }
        else
            text.AppendLine(Inv, $"Loaded: {o.Settings.LoadPath} (trained for {Plural(t.Steps, "step")})");
        text.AppendLine(Inv, $"Final loss: {t.TrainLoss:F3} (train) {t.ValidationLoss:F3} (validation)");
        var samples = SampleList(o);
        if (samples.Count > 0)
        {
            text.AppendLine("Samples:");
            int width = samples.Count.ToString(Inv).Length;
            for (int i = 0; i < samples.Count; i++)
                text.AppendLine(Inv, $"{(i + 1).ToString(Inv).PadLeft(width + 1)} : {samples[i].Name}{(samples[i].InTraining ? " (in training data)" : "")}");
            text.AppendLine(Inv, $"New names: {samples.Count(x => !x.InTraining)} of {samples.Count} ({NewShare(o) * 100:F0}%); mean length {MeanLength(o):F1} letters (the data's: {t.MeanLength:F1})");
        }
        if (o.Scores is { } scores) AppendScores(text, scores);
        text.AppendLine(Inv, $"Validation loss: {t.ValidationLoss:F3} for this model, {t.BigramLoss:F3} for a count bigram");
        if (o.SavedTo is string saved) text.AppendLine(Inv, $"Saved model to {saved}");
        return text.ToString();
    }

    /// <summary>One line a name: its bits, bits a letter, and each letter's bits, the most
    /// surprising in brackets.</summary>
    static void AppendScores(StringBuilder text, IReadOnlyList<NameScore> scores)
    {
        text.AppendLine("Scores (surprise in bits; lower is more name-like):");
        int width = Math.Min(24, scores.Max(s => Names.Length(s.Name)));
        foreach (var s in scores)
        {
            string name = s.Name + new string(' ', Math.Max(0, width - Names.Length(s.Name)));
            if (s.Error is string error)
            {
                text.AppendLine(Inv, $"  {name}  cannot be scored: {error}");
                continue;
            }
            var letters = s.Letters.Select((l, i) => i == s.MostSurprising ? $"[{l.Letter} {l.Bits:F1}]" : $" {l.Letter} {l.Bits:F1} ");
            text.AppendLine(Inv, $"  {name}  {s.Bits,5:F1} bits  {s.BitsPerLetter:F2} a letter{(s.InTraining ? "  (in training data)" : "")}  {string.Join("", letters).TrimEnd()}");
        }
    }

    public static string Json(Outcome o)
    {
        var buffer = new MemoryStream();
        var options = new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        using (var w = new Utf8JsonWriter(buffer, options))
        {
            var t = o.Trained;
            var run = o.Training;
            void NumberOrNull(string name, double? value)
            {
                if (value is double v) w.WriteNumber(name, v); else w.WriteNull(name);
            }
            w.WriteStartObject();
            w.WriteString("model", t.Model.Kind == ModelKind.Mlp ? "mlp" : "bag");
            w.WriteNumber("seconds", run?.Seconds ?? 0);
            w.WriteNumber("steps", t.Steps);
            w.WriteNumber("best_step", t.BestStep);
            NumberOrNull("examples", run is null ? null : run.Steps * (double)o.Settings.BatchSize);
            w.WriteNumber("examples_per_second", Math.Round(ExamplesPerSecond(o)));
            w.WriteNumber("threads", run?.Threads ?? 1);
            w.WriteNumber("macs_per_example", Math.Round(t.Model.MultiplyAddsPerExample, 1));
            w.WriteNumber("train_loss", t.TrainLoss);
            w.WriteNumber("val_loss", t.ValidationLoss);
            w.WriteNumber("bigram_val_loss", t.BigramLoss);
            NumberOrNull("diverged_at_step", run?.DivergedAt);
            w.WriteNumber("checks", run?.Checks ?? 0);
            w.WriteNumber("check_seconds", run?.CheckSeconds ?? 0);
            w.WriteNumber("alloc_bytes_per_step", run?.AllocatedBytesPerStep ?? 0);
            w.WriteNumber("startup_seconds", o.StartupSeconds);
            w.WriteBoolean("avx512", Vector512.IsHardwareAccelerated);
            w.WriteBoolean("stopped_early", run?.StoppedEarly ?? false);
            w.WriteNumber("vocab_size", t.Vocab.Size);
            w.WriteNumber("names", t.NameCount);
            w.WriteNumber("new_share", NewShare(o));
            w.WriteNumber("mean_length", MeanLength(o));
            w.WriteNumber("data_mean_length", t.MeanLength);
            w.WriteStartArray("samples");
            foreach (var (name, inTraining) in SampleList(o))
            {
                w.WriteStartObject();
                w.WriteString("name", name);
                w.WriteBoolean("in_training", inTraining);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (o.Scores is { } scores)
            {
                w.WriteStartArray("scores");
                foreach (var s in scores)
                {
                    w.WriteStartObject();
                    w.WriteString("name", s.Name);
                    NumberOrNull("bits", s.Error is null ? Math.Round(s.Bits, 4) : null);
                    NumberOrNull("bits_per_letter", s.Error is null ? Math.Round(s.BitsPerLetter, 4) : null);
                    w.WriteBoolean("in_training", s.InTraining);
                    w.WriteStartArray("letters");
                    foreach (var (letter, bits) in s.Letters)
                    {
                        w.WriteStartObject();
                        w.WriteString("letter", letter);
                        w.WriteNumber("bits", Math.Round(bits, 4));
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                    if (s.Error is string error) w.WriteString("error", error); else w.WriteNull("error");
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            if (o.SavedTo is string saved) w.WriteString("saved", saved); else w.WriteNull("saved");
            var failures = o.Failures().ToList();
            if (failures.Count > 0) w.WriteString("error", string.Join("; ", failures)); else w.WriteNull("error");
            WriteOptions(w, o);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + Environment.NewLine;
    }

    // every option's value; with --load, the training options did not apply: null
    static void WriteOptions(Utf8JsonWriter w, Outcome o)
    {
        var s = o.Settings;
        var m = o.Trained.Model;
        var rules = s.Sampling;
        bool trained = o.Training is not null;
        void Trained(string name, Action<string> write)
        {
            if (trained) write(name); else w.WriteNull(name);
        }
        w.WriteStartObject("options");
        Trained("names_file", name => w.WriteString(name, s.NamesPath ?? "(bundled)"));
        w.WriteString("model", m.Kind == ModelKind.Mlp ? "mlp" : "bag");
        Trained("seconds", name => w.WriteNumber(name, s.Seconds));
        if (trained && s.Steps is long steps) w.WriteNumber("steps", steps); else w.WriteNull("steps");
        w.WriteNumber("samples", s.Samples);
        w.WriteNumber("seed", s.Seed);
        Trained("batch_size", name => w.WriteNumber(name, s.BatchSize));
        w.WriteNumber("context", m.K);
        w.WriteNumber("dim", m.D);
        if (m.Kind == ModelKind.Mlp) w.WriteNumber("hidden", m.H); else w.WriteNull("hidden");
        Trained("lr", name => w.WriteNumber(name, s.LearningRate));
        Trained("threads", name => w.WriteNumber(name, s.Threads ?? Environment.ProcessorCount));
        w.WriteBoolean("order_blind", !m.Positional);
        w.WriteNumber("temperature", rules.Temperature);
        if (rules.TopK is int k) w.WriteNumber("top_k", k); else w.WriteNull("top_k");
        w.WriteString("prefix", rules.Prefix);
        w.WriteNumber("min_length", rules.MinLength);
        w.WriteNumber("max_length", rules.MaxLength);
        w.WriteBoolean("unique", rules.Unique);
        w.WriteBoolean("new_only", rules.NewOnly);
        if (s.SavePath is string save) w.WriteString("save", save); else w.WriteNull("save");
        if (s.LoadPath is string load) w.WriteString("load", load); else w.WriteNull("load");
        if (s.ScoreFile is string scoreFile) w.WriteString("score_file", scoreFile); else w.WriteNull("score_file");
        w.WriteBoolean("sort", s.Sort);
        w.WriteEndObject();
    }
}

// ================================================================================================
// Command line
// ================================================================================================

internal static class Program
{
    static int Main(string[] args)
    {
        // Ctrl+C during training ends it early, and the run still saves and samples; at any other
        // time, or a second time, it quits at once (exit code 130) and saves nothing.
        using var stop = new CancellationTokenSource();
        int training = 0;
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = Volatile.Read(ref training) == 1 && !stop.IsCancellationRequested;
            stop.Cancel();
        };
        return Run(args, Console.Out, Console.Error, stop.Token, started => Volatile.Write(ref training, started ? 1 : 0));
    }

    /// <summary>The options that only training uses: with --load there is no training.</summary>
    static readonly string[] TrainingOptions =
        ["--names", "--model", "--batch-size", "--context", "--dim", "--hidden", "--lr", "--order-blind", "--seconds", "--steps", "--threads"];

    /// <summary>The options that only sampling uses: --score scores names instead.</summary>
    static readonly string[] SamplingOptions =
        ["--samples", "--temperature", "--top-k", "--prefix", "--min-length", "--max-length", "--unique", "--new-only"];

    /// <summary>The whole program: 0 on success, 1 for bad data or a failed run, 2 for a bad
    /// command line, 130 when interrupted before training. Every failure is one line on stderr
    /// (output that was made before it, such as samples, still goes to stdout).</summary>
    internal static int Run(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken stop = default,
        Action<bool>? training = null)
    {
        var d = new Settings();
        var r = new SamplingRules();
        var seconds = Number("--seconds", "S", "Seconds of training (wall time), 0.001 to 3600", d.Seconds, 1e-3, 3600, "a number of seconds from 0.001 to 3600");
        var steps = Optional("--steps", "N", "Train exactly N steps instead of for --seconds (reproducible), 1 to 1,000,000,000 [default: none]", 1L, 1_000_000_000L, "a whole number from 1 to 1,000,000,000");
        var samples = Number("--samples", "N", "How many names to print, 0 to 100,000", d.Samples, 0, 100_000, "a whole number from 0 to 100,000");
        var seed = Number("--seed", "N", "Seed for the split, the initial weights, the batches and the samples", d.Seed, long.MinValue, long.MaxValue, "a whole number that fits in 64 bits");
        var names = File("--names", "Names file, one name a line (UTF-8); - reads standard input [default: the bundled names.txt]");
        var model = new Option<ModelKind?>("--model")
        {
            Description = "The model: mlp (a hidden layer of tanh units) or bag (a bag of embeddings, the seed's) [default: mlp]",
            HelpName = "mlp|bag",
            CustomParser = result => result.Tokens[0].Value switch
            {
                "mlp" => ModelKind.Mlp,
                "bag" => ModelKind.Bag,
                _ => Invalid<ModelKind?>(result, "--model", "mlp or bag", null),
            },
        };
        var batchSize = Number("--batch-size", "B", "Examples per SGD step, 1 to 65,536", d.BatchSize, 1, 65_536, "a whole number from 1 to 65,536");
        var context = Number("--context", "K", $"Letters of context the model sees, 1 to {Limits.MaxContext}", d.Context, 1, Limits.MaxContext, $"a whole number from 1 to {Limits.MaxContext}");
        var (bag, mlp) = (Settings.DefaultsFor(ModelKind.Bag), Settings.DefaultsFor(ModelKind.Mlp));
        var dim = Optional("--dim", "D", $"Embedding width, 1 to {Limits.MaxDim} [default: {mlp.Dim} for the MLP, {bag.Dim} for the bag]", 1, Limits.MaxDim, $"a whole number from 1 to {Limits.MaxDim}");
        var hidden = Number("--hidden", "H", $"Hidden units of the MLP, 1 to {Limits.MaxHidden}", d.Hidden, 1, Limits.MaxHidden, $"a whole number from 1 to {Limits.MaxHidden}");
        var lr = Optional("--lr", "R", $"SGD learning rate at the start, up to 1,000,000; the last fifth of the run uses a tenth of it [default: {mlp.LearningRate.ToString(CultureInfo.InvariantCulture)} for the MLP, {bag.LearningRate.ToString(CultureInfo.InvariantCulture)} for the bag]",
            float.Epsilon, 1e6f, "a positive number up to 1,000,000");
        var threads = Optional("--threads", "N", $"Threads to train on, 1 to {Limits.MaxThreads}; the result is the same for any number [default: every core, {Environment.ProcessorCount} here]",
            1, Limits.MaxThreads, $"a whole number from 1 to {Limits.MaxThreads}");
        var orderBlind = new Option<bool>("--order-blind") { Description = "The bag with one embedding per letter for every position (the seed's model)" };
        var temperature = Number("--temperature", "T", "Sampling temperature, 0.001 to 100: lower is safer, higher is wilder", r.Temperature, 1e-3f, 100f, "a number from 0.001 to 100");
        var topK = Optional("--top-k", "K", "Sample only from the K most likely next letters, 1 to 100,000 [default: all]", 1, 100_000, "a whole number from 1 to 100,000");
        var prefix = new Option<string>("--prefix") { Description = "Every name starts with TEXT", HelpName = "TEXT", DefaultValueFactory = _ => r.Prefix };
        var minLength = Number("--min-length", "N", $"Shortest name to print, in letters, 1 to {Limits.MaxNameLength}", r.MinLength, 1, Limits.MaxNameLength, $"a whole number from 1 to {Limits.MaxNameLength}");
        var maxLength = Number("--max-length", "N", $"Longest name to print, in letters, 1 to {Limits.MaxNameLength}", r.MaxLength, 1, Limits.MaxNameLength, $"a whole number from 1 to {Limits.MaxNameLength}");
        var unique = new Option<bool>("--unique") { Description = "Never print the same name twice" };
        var newOnly = new Option<bool>("--new-only") { Description = "Print only names that are not in the training data" };
        var save = File("--save", "Save the trained model to FILE");
        var load = File("--load", "Use a model saved with --save, without training");
        var score = new Option<string[]>("--score")
        {
            Description = "Score these names letter by letter instead of sampling: how surprising each letter is to the model",
            HelpName = "NAME...", AllowMultipleArgumentsPerToken = true,
        };
        var scoreFile = File("--score-file", "Score the names in FILE, one a line (- reads standard input)");
        var sort = new Option<bool>("--sort") { Description = "Order the scores from the most name-like to the least" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of text" };

        var root = new RootCommand("BabyNames: trains a tiny character-level language model for about a second, then invents names.")
        {
            seconds, steps, samples, seed, names, model, batchSize, context, dim, hidden, lr, threads, orderBlind,
            temperature, topK, prefix, minLength, maxLength, unique, newOnly, save, load, score, scoreFile, sort, json,
        };
        root.SetAction(parsed =>
        {
            bool Given(Option option) => parsed.GetResult(option) is { Implicit: false };
            var rules = new SamplingRules(parsed.GetValue(temperature), parsed.GetValue(topK), Names.Normalize(parsed.GetValue(prefix)!),
                parsed.GetValue(minLength), parsed.GetValue(maxLength), parsed.GetValue(unique), parsed.GetValue(newOnly));
            var kind = parsed.GetValue(model) ?? d.Model;
            var settings = new Settings(
                parsed.GetValue(seconds), parsed.GetValue(steps), parsed.GetValue(samples), parsed.GetValue(seed),
                parsed.GetValue(names), kind, parsed.GetValue(batchSize), parsed.GetValue(context),
                parsed.GetValue(dim) ?? Settings.DefaultsFor(kind).Dim, parsed.GetValue(hidden),
                parsed.GetValue(lr) ?? Settings.DefaultsFor(kind).LearningRate, parsed.GetValue(orderBlind),
                parsed.GetValue(threads), rules, parsed.GetValue(save), parsed.GetValue(load), parsed.GetValue(json),
                Given(score) ? parsed.GetValue(score) : null, parsed.GetValue(scoreFile), parsed.GetValue(sort));
            string? problem = settings.LoadPath is null ? null
                : root.Options.Where(o => TrainingOptions.Contains(o.Name) && Given(o))
                    .Select(o => $"{o.Name} is for training, and --load uses a saved model without training").FirstOrDefault();
            if (settings.Scoring)
                problem ??= root.Options.Where(o => SamplingOptions.Contains(o.Name) && Given(o))
                    .Select(o => $"{o.Name} is for sampling, and --score scores names instead").FirstOrDefault();
            problem ??= rules.MinLength > rules.MaxLength ? "--min-length must not be more than --max-length"
                : Names.Length(rules.Prefix) > rules.MaxLength ? "--prefix is longer than --max-length"
                : Given(steps) && Given(seconds) ? "--steps and --seconds do not go together: give one of them"
                : settings.OrderBlind && settings.Model == ModelKind.Mlp ? "--order-blind is a variant of the bag: give --model bag with it"
                : Given(hidden) && settings.Model == ModelKind.Bag ? "--hidden is for the MLP, and --model bag has no hidden layer"
                : settings.Sort && !settings.Scoring ? "--sort orders scores: give --score or --score-file with it"
                : null;
            foreach (var option in (Option<string?>[])[names, save, load, scoreFile])
                if (parsed.GetValue(option) is string path && string.IsNullOrWhiteSpace(path))
                    problem ??= $"{option.Name} needs a file name";
            if (problem is not null)
            {
                stderr.WriteLine($"error: {problem} (see --help)");
                return 2;
            }
            return Execute(settings, stdout, stderr, stop, training);
        });

        if (MissingValue(args, root) is string missing)
        {
            stderr.WriteLine($"error: {missing} (see --help)");
            return 2;
        }
        // no response files: "--names @list.txt" means the file called @list.txt
        var result = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (result.Errors.Count > 0)
        {
            string message = result.UnmatchedTokens.FirstOrDefault() is string token
                ? token.StartsWith('-') ? $"unknown option '{token}'" : $"unexpected argument '{token}'"
                : result.Errors[0].Message.TrimEnd('.');
            stderr.WriteLine($"error: {message} (see --help)");
            return 2;
        }
        try
        {
            return result.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) // --help into a closed or full output
        {
            return OutputError(stderr, e);
        }
    }

    /// <summary>An option at the end of the line, or followed by another of our options, has no
    /// value: say so, rather than take the next option as its value ("--save --json").</summary>
    static string? MissingValue(string[] args, RootCommand root)
    {
        var takesValue = root.Options.Where(o => o.Arity.MinimumNumberOfValues > 0).ToDictionary(o => o.Name, o => o.HelpName ?? "a value");
        var known = root.Options.SelectMany(o => o.Aliases.Append(o.Name)).ToHashSet();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--") break;
            if (takesValue.TryGetValue(args[i], out var what) && (i + 1 == args.Length || known.Contains(args[i + 1])))
                return $"{args[i]} needs a value ({what})";
        }
        return null;
    }

    static int Execute(Settings settings, TextWriter stdout, TextWriter stderr, CancellationToken stop, Action<bool>? training)
    {
        try
        {
            bool live = !settings.Json && ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected;
            var outcome = Runner.Run(settings, stop, live ? stderr : null, training);
            try
            {
                stdout.Write(settings.Json ? Report.Json(outcome) : Report.Text(outcome));
                stdout.Flush();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) // a full disk, a closed output
            {
                return OutputError(stderr, e);
            }
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
        catch (Exception e) // a bug of ours: still one line, and no stack trace
        {
            stderr.WriteLine($"error: internal error ({e.GetType().Name}: {e.Message}); please report it");
            return 1;
        }
    }

    static int OutputError(TextWriter stderr, Exception e)
    {
        try { stderr.WriteLine($"error: cannot write the output: {e.Message}"); }
        catch (Exception again) when (again is IOException or UnauthorizedAccessException) { } // nowhere left to say it
        return 1;
    }

    static Option<string?> File(string name, string description) => new(name) { Description = description, HelpName = "FILE" };

    /// <summary>A numeric option whose parser also checks the range, so that every bad value gets
    /// the same kind of message: "--lr must be a positive number, got '-1'".</summary>
    static Option<T> Number<T>(string name, string helpName, string description, T defaultValue, T min, T max, string requirement)
        where T : struct, INumber<T> =>
        new(name)
        {
            Description = description,
            HelpName = helpName,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = result => ParseInRange(result, name, min, max, requirement) ?? defaultValue,
        };

    static Option<T?> Optional<T>(string name, string helpName, string description, T min, T max, string requirement)
        where T : struct, INumber<T> =>
        new(name) { Description = description, HelpName = helpName, CustomParser = result => ParseInRange(result, name, min, max, requirement) };

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
