// BabyNames: a character-level language model that invents baby names, in one file.
//
// It reads a list of real names, trains a "bag of embeddings" for about a second with plain SGD,
// then samples new names. Gradients come from reverse-mode automatic differentiation in the style
// of Conal Elliott's "The Simple Essence of Automatic Differentiation": every operation returns its
// value together with a backpropagator, a plain function that takes the gradient of the loss with
// respect to that value and pushes gradient into the operation's inputs. The chain rule is then
// just one function calling the next; there is no tape and no graph object.
//
// The file reads top to bottom: autodiff, primitives, data, model, training, sampling, model files,
// command line.

using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
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
internal sealed class Node<T>(T value, Action<T> back)
{
    public T Value { get; } = value;
    public Action<T> Back { get; } = back;
}

/// <summary>A trainable (Rows, Cols) table and the gradient of the loss with respect to it. Params
/// are the leaves of every computation: backpropagation ends by adding into <see cref="Grad"/>.</summary>
internal sealed class Param(int rows, int cols)
{
    public int Rows { get; } = rows;
    public int Cols { get; } = cols;
    public float[] Data { get; } = new float[rows * cols];
    public float[] Grad { get; } = new float[rows * cols];

    /// <summary>Plain SGD, and the gradient is zeroed in the same pass, ready for the next step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Step(float lr)
    {
        var rate = Vector512.Create(lr);
        fixed (float* data = Data, grad = Grad)
            for (int i = 0; i < Data.Length; i += Ops.Lanes)
            {
                (Vector512.Load(data + i) - rate * Vector512.Load(grad + i)).Store(data + i);
                Vector512<float>.Zero.Store(grad + i);
            }
    }

    public void ZeroGrad() => Array.Clear(Grad);
}

// ================================================================================================
// Primitives: each computes its output and, right beside it, its backpropagator
// ================================================================================================
// Each primitive runs its forward kernel and returns the output with a closure that runs the
// backward kernel and then hands the input's gradient on. The kernels are static local functions
// over pinned pointers, so that the hot loops run on registers and plain pointer arithmetic, not
// on the closure's captured fields and bounds-checked indices. Buffers are float[] owned by the
// model and reused every step. Every row is a whole number of 16-float vectors, padding columns
// included (they stay zero), so no kernel needs a scalar tail. On a machine without AVX-512,
// Vector512 runs as two Vector256 halves: the same code is the fallback.

internal static class Ops
{
    public const int Lanes = 16;

    public static int RoundUp(int size) => (size + Lanes - 1) / Lanes * Lanes;

    // The kernels index their buffers without bounds checks, so each primitive checks the shapes
    // it is given (once per call) before it runs them.
    static void Require(bool shapesFit, string primitive)
    {
        if (!shapesFit) throw new ArgumentException($"{primitive}: the buffers do not have the shapes it needs");
    }

    /// <summary>out[i] = table[rows[i]] for i below count: (n,K,D) when rows holds n·K rows.</summary>
    public static Node<float[]> GatherRows(Param table, int[] rows, int count, float[] output)
    {
        Require(table.Cols % Lanes == 0 && rows.Length >= count && output.Length >= count * table.Cols
            && rows.AsSpan(0, count).IndexOfAnyExceptInRange(0, table.Rows - 1) < 0, "GatherRows");
        Forward(table.Data, rows, count, table.Cols, output);
        return new(output, g => Backward(g, rows, count, table.Cols, table.Grad));

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Forward(float[] table, int[] rows, int count, int D, float[] output)
        {
            fixed (float* t = table, o = output)
                for (int i = 0; i < count; i++)
                    for (int d = 0; d < D; d += Lanes)
                        Vector512.Load(t + rows[i] * D + d).Store(o + i * D + d);
        }

        // a row used more than once receives the sum of its gradients
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Backward(float[] g, int[] rows, int count, int D, float[] grad)
        {
            fixed (float* gp = g, t = grad)
                for (int i = 0; i < count; i++)
                    for (int d = 0; d < D; d += Lanes)
                    {
                        float* row = t + rows[i] * D + d;
                        (Vector512.Load(row) + Vector512.Load(gp + i * D + d)).Store(row);
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

    /// <summary>logits = h·Wᵀ + bias: (n,D) and (Vw,D) → (n,Vp), where W's row count Vw is a
    /// multiple of 4 and Vp, bias's width, a multiple of 16; rows of W past the vocabulary are zero,
    /// and so are the logits past it.</summary>
    public static Node<float[]> MatMul(Node<float[]> h, Param W, Param bias, int n,
        float[] wT, float[] output, float[] gradH)
    {
        int D = W.Cols, Vp = bias.Cols;
        Require(D % Lanes == 0 && W.Rows % 4 == 0 && Vp % Lanes == 0 && W.Rows <= Vp && bias.Rows == 1
            && h.Value.Length >= n * D && gradH.Length >= n * D && wT.Length >= D * Vp && output.Length >= n * Vp, "MatMul");
        Forward(h.Value, W, bias.Data, n, wT, output);
        return new(output, g =>
        {
            Backward(g, h.Value, W, bias.Grad, n, gradH);
            h.Back(gradH);
        });

        // With Wᵀ (D,Vp), a vector of 16 logits is a sum of broadcasts of h times rows of Wᵀ: no
        // horizontal sums. Eight examples share each load of Wᵀ, and their eight sums are
        // independent chains of multiply-adds, enough to keep the multiply-add units busy.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Forward(float[] h, Param W, float[] bias, int n, float[] wT, float[] output)
        {
            int D = W.Cols, Vp = bias.Length;
            fixed (float* hp = h, wp = W.Data, wt = wT, bp = bias, o = output)
            {
                for (int v = 0; v < Vp; v += Lanes)
                    for (int d = 0; d < D; d += Lanes)
                        TransposeBlock(wp + v * D + d, D, Math.Min(Lanes, W.Rows - v), wt + d * Vp + v, Vp);
                for (int b = 0; b < n; b += 8)
                {
                    // a last block of fewer than 8 examples repeats its last row and stores only its own
                    int last = Math.Min(7, n - 1 - b);
                    int r1 = Math.Min(1, last) * D, r2 = Math.Min(2, last) * D, r3 = Math.Min(3, last) * D,
                        r4 = Math.Min(4, last) * D, r5 = Math.Min(5, last) * D, r6 = Math.Min(6, last) * D, r7 = last * D;
                    for (int j = 0; j < Vp; j += Lanes)
                    {
                        var s0 = Vector512.Load(bp + j);
                        var (s1, s2, s3, s4, s5, s6, s7) = (s0, s0, s0, s0, s0, s0, s0);
                        float* x = hp + b * D, column = wt + j;
                        for (int d = 0; d < D; d++, x++, column += Vp)
                        {
                            var w = Vector512.Load(column);
                            s0 = Vector512.FusedMultiplyAdd(Vector512.Create(x[0]), w, s0);
                            s1 = Vector512.FusedMultiplyAdd(Vector512.Create(x[r1]), w, s1);
                            s2 = Vector512.FusedMultiplyAdd(Vector512.Create(x[r2]), w, s2);
                            s3 = Vector512.FusedMultiplyAdd(Vector512.Create(x[r3]), w, s3);
                            s4 = Vector512.FusedMultiplyAdd(Vector512.Create(x[r4]), w, s4);
                            s5 = Vector512.FusedMultiplyAdd(Vector512.Create(x[r5]), w, s5);
                            s6 = Vector512.FusedMultiplyAdd(Vector512.Create(x[r6]), w, s6);
                            s7 = Vector512.FusedMultiplyAdd(Vector512.Create(x[r7]), w, s7);
                        }
                        Span<Vector512<float>> sums = [s0, s1, s2, s3, s4, s5, s6, s7];
                        for (int i = 0; i <= last; i++) sums[i].Store(o + (b + i) * Vp + j);
                    }
                }
            }
        }

        // One sweep over the batch per block of 4 rows of W gives all three gradients:
        // dh[b] = Σ_v g[b,v]·W[v],  dW[v] += Σ_b g[b,v]·h[b],  dbias += Σ_b g[b].
        // The block's rows of W and their gradient sums stay in registers for the whole sweep, and
        // each broadcast g[b,v] feeds both products.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Backward(float[] g, float[] h, Param W, float[] biasGrad, int n, float[] gradH)
        {
            int D = W.Cols, Vp = biasGrad.Length;
            fixed (float* gp = g, hp = h, wp = W.Data, gw = W.Grad, bg = biasGrad, dh = gradH)
            {
                for (int d = 0; d < D; d += Lanes)
                    for (int v = 0; v < W.Rows; v += 4)
                    {
                        float* wv = wp + v * D + d;
                        var (w0, w1, w2, w3) = (Vector512.Load(wv), Vector512.Load(wv + D), Vector512.Load(wv + 2 * D), Vector512.Load(wv + 3 * D));
                        var (a0, a1, a2, a3) = (Vector512<float>.Zero, Vector512<float>.Zero, Vector512<float>.Zero, Vector512<float>.Zero);
                        float* gb = gp + v, hb = hp + d, dhb = dh + d;
                        for (int b = 0; b < n; b++, gb += Vp, hb += D, dhb += D)
                        {
                            var x = Vector512.Load(hb);
                            var (g0, g1, g2, g3) = (Vector512.Create(gb[0]), Vector512.Create(gb[1]), Vector512.Create(gb[2]), Vector512.Create(gb[3]));
                            a0 = Vector512.FusedMultiplyAdd(g0, x, a0);
                            a1 = Vector512.FusedMultiplyAdd(g1, x, a1);
                            a2 = Vector512.FusedMultiplyAdd(g2, x, a2);
                            a3 = Vector512.FusedMultiplyAdd(g3, x, a3);
                            var sum = v == 0 ? Vector512<float>.Zero : Vector512.Load(dhb);
                            var even = Vector512.FusedMultiplyAdd(g2, w2, Vector512.FusedMultiplyAdd(g0, w0, sum));
                            var odd = Vector512.FusedMultiplyAdd(g3, w3, g1 * w1);
                            (even + odd).Store(dhb);
                        }
                        float* gwv = gw + v * D + d;
                        (Vector512.Load(gwv) + a0).Store(gwv);
                        (Vector512.Load(gwv + D) + a1).Store(gwv + D);
                        (Vector512.Load(gwv + 2 * D) + a2).Store(gwv + 2 * D);
                        (Vector512.Load(gwv + 3 * D) + a3).Store(gwv + 3 * D);
                    }
                for (int j = 0; j < Vp; j += Lanes)
                {
                    var sum = Vector512.Load(bg + j);
                    for (int b = 0; b < n; b++) sum += Vector512.Load(gp + b * Vp + j);
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

        // probs[b] = softmax(logits[b]), zero in the padding columns. Σ_b log z_b is taken as
        // log Π z_b, one log per 64 examples instead of one each: with the maximum subtracted every
        // z_b is between 1 and V, so the product of 64 fits in a double.
        static float Forward(float[] logits, int[] targets, int n, int V, float[] probs)
        {
            double total = 0;
            for (int start = 0; start < n; start += 64)
                total += Rows(logits, targets, start, Math.Min(n, start + 64), V, probs);
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

        // d(mean loss)/dlogits[b] = (probs[b] − onehot(targets[b])) / n
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
}

// ================================================================================================
// Data: names, their characters, and (context → next character) examples
// ================================================================================================

/// <summary>A problem with what the user gave us: reported as one line, with this exit code.</summary>
internal sealed class UserError(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

internal static class Limits
{
    public const int MaxNameLength = 50;        // characters; also where sampling stops
    public const int MaxVocabulary = 256;       // distinct characters, the boundary included
    public const int MaxNames = 5_000_000;
    public const long MaxFileBytes = 256L << 20;
    public const long MaxBufferBytes = 1L << 30; // all of the model's tables and step buffers
}

/// <summary>The characters that occur in the names, plus one boundary token (id 0) that stands
/// before a name's first character and after its last.</summary>
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
        int[] characters = [.. seen];
        Array.Sort(characters);
        symbols = ['.', .. characters];
        ids = new Dictionary<int, int>(symbols.Length);
        for (int i = 1; i < symbols.Length; i++) ids[symbols[i]] = i;
    }

    public Vocabulary(IEnumerable<Rune> characters) : this(characters.Select(c => c.ToString())) { }

    public int Size => symbols.Length;

    /// <summary>The characters, in id order, the boundary left out.</summary>
    public IEnumerable<Rune> Characters => symbols.Skip(1).Select(c => new Rune(c));

    public bool TryEncode(string text, out int[] encoded, out Rune unknown)
    {
        Span<int> buffer = stackalloc int[text.Length];
        int length = TryEncode(text, buffer, out unknown);
        encoded = length < 0 ? [] : buffer[..length].ToArray();
        return length >= 0;
    }

    /// <summary>Writes the ids of text's characters to `encoded` and returns how many there are,
    /// or −1 when a character is not in the vocabulary (then `unknown` is that character).</summary>
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

    public int[] Encode(string text) =>
        TryEncode(text, out var encoded, out var unknown) ? encoded
            : throw new UserError(1, $"'{unknown}' is not a character of the names");

    public string Decode(IEnumerable<int> encoded)
    {
        var text = new StringBuilder();
        foreach (var id in encoded) text.Append(new Rune(symbols[id]).ToString());
        return text.ToString();
    }
}

internal static class Names
{
    /// <summary>A name's length in characters (Unicode code points, not UTF-16 units).</summary>
    public static int Length(string name)
    {
        int length = 0;
        foreach (var _ in name.EnumerateRunes()) length++;
        return length;
    }

    /// <summary>One name a line: trimmed, lower-cased, NFC-normalized; blank lines skipped and
    /// duplicates dropped. Anything that is not a list of names is an error that says where.</summary>
    public static List<string> Parse(ReadOnlySpan<byte> bytes, string source)
    {
        if (bytes.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) bytes = bytes[3..];
        string text;
        try { text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (DecoderFallbackException) { throw new UserError(1, $"{source} is not UTF-8 text; give a text file with one name a line"); }

        var names = new List<string>();
        var seen = new HashSet<string>();
        int lineNumber = 0;
        foreach (var range in text.AsSpan().Split('\n'))
        {
            lineNumber++;
            var line = text.AsSpan(range).Trim();
            if (line.IsEmpty) continue;
            var name = IsPlain(line) ? line.ToString() : line.ToString().Normalize(NormalizationForm.FormC).ToLowerInvariant();
            foreach (var c in name)
                if (char.IsControl(c) || (char.IsWhiteSpace(c) && c != ' '))
                    throw new UserError(1, $"{source}, line {lineNumber}: control or space character U+{(int)c:X4} in a name; give a text file with one name a line");
            int length = Names.Length(name);
            if (length > Limits.MaxNameLength)
                throw new UserError(1, $"{source}, line {lineNumber}: a name of {length} characters; names may have at most {Limits.MaxNameLength}");
            if (seen.Add(name)) names.Add(name);
            if (names.Count > Limits.MaxNames)
                throw new UserError(1, $"{source} has more than {Limits.MaxNames:N0} names; that is the most BabyNames reads");
        }
        if (names.Count == 0) throw new UserError(1, $"{source} has no names: it is empty or has only blank lines");
        if (names.Count < 2) throw new UserError(1, $"{source} has only one distinct name; give at least 2 (some to train on, some to validate with)");
        return names;
    }

    // Lower-case text below U+0300, where the combining marks start, is already in normal form C:
    // most names are, and skip the slow trip to ICU.
    static bool IsPlain(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
            if (c >= '\u0300' || char.IsUpper(c)) return false;
        return true;
    }

    public static List<string> Read(string? path)
    {
        if (path is null)
        {
            using var embedded = typeof(Names).Assembly.GetManifestResourceStream("names.txt")!;
            var buffer = new MemoryStream();
            embedded.CopyTo(buffer);
            return Parse(buffer.ToArray(), "the bundled names.txt");
        }
        if (Directory.Exists(path)) throw new UserError(1, $"names file '{path}' is a directory; give a text file with one name a line");
        if (!File.Exists(path)) throw new UserError(1, $"names file '{path}' does not exist");
        try
        {
            // read with a cap as we go: a pipe or a device has no length to check first
            using var file = File.OpenRead(path);
            var bytes = new MemoryStream();
            var chunk = new byte[1 << 16];
            for (int read; (read = file.Read(chunk)) > 0;)
            {
                if (bytes.Length + read > Limits.MaxFileBytes)
                    throw new UserError(1, $"names file '{path}' is larger than {Limits.MaxFileBytes >> 20} MB");
                bytes.Write(chunk, 0, read);
            }
            return Parse(bytes.GetBuffer().AsSpan(0, (int)bytes.Length), $"names file '{path}'");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserError(1, $"cannot read names file '{path}': {e.Message}");
        }
    }
}

/// <summary>The names split 90/10 into training and validation names, shuffled with the seed.</summary>
internal sealed record Corpus(Vocabulary Vocab, string[] Train, string[] Validation)
{
    public static Corpus Split(List<string> names, Rng rng)
    {
        var vocab = new Vocabulary(names);
        if (vocab.Size > Limits.MaxVocabulary)
            throw new UserError(1, $"the names use {vocab.Size - 1} different characters, and at most {Limits.MaxVocabulary - 1} are supported; give names in fewer alphabets");
        string[] shuffled = [.. names];
        rng.Shuffle(shuffled);
        int validation = Math.Max(1, shuffled.Length / 10);
        return new(vocab, shuffled[validation..], shuffled[..validation]);
    }
}

/// <summary>Every (K previous characters → next character) pair in a list of names. A name of L
/// characters gives L+1 examples: its last one predicts the boundary.</summary>
internal sealed class Examples
{
    public int K { get; }
    public int Count { get; }
    // (Count,K+1): each example's K context characters, oldest first, then the character that
    // follows them; one example is one short run of memory, however the batch picks them. The
    // vocabulary has at most 256 characters, so an id fits in a byte.
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
            if (length < 0) throw new UserError(1, $"'{unknown}' is not a character of the names");
            for (int t = 0; t <= length; t++, i++)
            {
                var example = Tokens.AsSpan(i * (K + 1), K + 1);
                for (int k = 0; k < K; k++)
                {
                    int position = t - K + k; // where in the name the k-th context character is
                    example[k] = (byte)(position < 0 ? Vocabulary.Boundary : name[position]);
                }
                example[K] = (byte)(t < length ? name[t] : Vocabulary.Boundary);
            }
        }
    }
}

/// <summary>xorshift64*: small, fast and plenty random for drawing batches and samples.</summary>
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
// Model: a bag of embeddings
// ================================================================================================
// Each of the K previous characters looks up a row of the embedding table; the rows are added up
// and every possible next character is scored against the sum. By default every context position
// has rows of its own (row k·V + c for character c at position k), so "emm" and "mem" differ; the
// order-blind variant shares one row per character across positions, as the original seed did.

internal sealed class Model
{
    public int V { get; }          // vocabulary size, the boundary included
    public int K { get; }          // context length
    public int D { get; }          // embedding width asked for
    public int Width { get; }      // D rounded up to whole vectors; the extra columns stay zero
    public int BatchSize { get; }
    public bool Positional { get; }
    public Param Embedding { get; } // (K·V or V, Width)
    public Param Weight { get; }    // (V rounded up to 4, Width)
    public Param Bias { get; }      // (1, Vp)
    public IReadOnlyList<Param> Params { get; }

    // character c at context position k uses embedding row k·rowOffset + c
    readonly int rowOffset;

    // step buffers, reused every step
    readonly int[] rows;            // (B,K) embedding rows of the batch's contexts
    readonly int[] targets;         // (B)
    readonly float[] gathered, gradGathered; // (B,K,Width)
    readonly float[] hidden, gradHidden;     // (B,Width)
    readonly float[] weightT;                // (Width,Vp)
    readonly float[] logits, probs, gradLogits; // (B,Vp)

    public Model(int vocabularySize, int context, int dim, int batchSize, bool positional, Rng rng)
    {
        (V, K, D, BatchSize, Positional) = (vocabularySize, context, dim, batchSize, positional);
        Width = Ops.RoundUp(dim);
        // W gets rows up to a multiple of 4 and the logits columns up to a multiple of 16, as
        // MatMul wants.
        int Vp = Ops.RoundUp(V), Vw = (V + 3) / 4 * 4, tableRows = positional ? K * V : V;
        long floats = 2L * (tableRows + Vw + 1) * Width + 2L * batchSize * K * Width
            + 2L * batchSize * Width + (long)Width * Vp + 3L * batchSize * Vp;
        if (floats * sizeof(float) > Limits.MaxBufferBytes)
            throw new UserError(2, $"these sizes need {floats * sizeof(float) >> 20} MB of buffers, more than the {Limits.MaxBufferBytes >> 20} MB limit; use a smaller --batch-size, --context or --dim");
        Embedding = new Param(tableRows, Width);
        Weight = new Param(Vw, Width);
        Bias = new Param(1, Vp);
        Params = [Embedding, Weight, Bias];
        foreach (var (table, rows) in (ReadOnlySpan<(Param, int)>)[(Embedding, tableRows), (Weight, V)])
            for (int r = 0; r < rows; r++)
                for (int d = 0; d < D; d++)
                    table.Data[r * Width + d] = (float)(rng.NextDouble() - 0.5);
        rowOffset = positional ? V : 0;
        this.rows = new int[batchSize * K];
        targets = new int[batchSize];
        gathered = new float[batchSize * K * Width];
        gradGathered = new float[gathered.Length];
        hidden = new float[batchSize * Width];
        gradHidden = new float[hidden.Length];
        weightT = new float[Width * Vp];
        logits = new float[batchSize * Vp];
        probs = new float[logits.Length];
        gradLogits = new float[logits.Length];
    }

    /// <summary>Puts example i of a set into batch slot `slot`.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void SetExample(int slot, Examples set, int i)
    {
        var tokens = set.Tokens.AsSpan(i * (K + 1), K + 1);
        for (int k = 0; k < K; k++) rows[slot * K + k] = k * rowOffset + tokens[k];
        targets[slot] = tokens[K];
    }

    /// <summary>Puts a context (K character ids, oldest first) into batch slot `slot`.</summary>
    public void SetContext(int slot, ReadOnlySpan<int> context)
    {
        for (int k = 0; k < K; k++) rows[slot * K + k] = k * rowOffset + context[k];
    }

    /// <summary>Scores for the next character of the first n slots, the first V of each row real.</summary>
    public Node<float[]> Logits(int n)
    {
        var embedded = Ops.GatherRows(Embedding, rows, n * K, gathered);         // (n,K,Width)
        var context = Ops.SumOverK(embedded, n, K, Width, hidden, gradGathered); // (n,Width)
        return Ops.MatMul(context, Weight, Bias, n, weightT, logits, gradHidden); // (n,Vp)
    }

    public Node<float> Loss(int n) => Ops.SoftmaxCrossEntropy(Logits(n), targets, n, V, probs, gradLogits);

    public void Step(float lr)
    {
        foreach (var p in Params) p.Step(lr);
    }
}

// ================================================================================================
// Training
// ================================================================================================

/// <summary>What a training run did. LossCurve holds the mean training loss in each of its
/// stretches of the run, for the sparkline.</summary>
internal sealed record TrainResult(long Steps, double Seconds, float TrainLoss, long AllocatedBytesPerStep,
    float[] LossCurve, bool StoppedEarly);

internal static class Trainer
{
    public const int CurvePoints = 40;

    /// <summary>SGD on random minibatches, for `seconds` of wall time or exactly `steps` steps,
    /// whichever is given, or until `stop` is cancelled (after at least one step). `progress`, if
    /// given, hears (step, elapsed seconds, loss) a few times a second.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static TrainResult Train(Model model, Examples train, float lr, double seconds, long? steps, Rng rng,
        CancellationToken stop = default, Action<long, double, float>? progress = null)
    {
        int B = model.BatchSize;
        var picks = new int[B];
        var curve = new double[CurvePoints];
        var counts = new int[CurvePoints];
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        double elapsed = 0, lastReport = 0;
        float loss = float.NaN;
        long step = 0;
        while (true)
        {
            // all the draws first: the random reads of the examples then overlap one another
            rng.Below(train.Count, picks);
            for (int b = 0; b < B; b++) model.SetExample(b, train, picks[b]);
            var node = model.Loss(B);
            loss = node.Value;
            if (!float.IsFinite(loss))
                throw new UserError(1, $"training diverged at step {step + 1} (loss = {(float.IsNaN(loss) ? "NaN" : "Infinity")}); try a smaller --lr");
            node.Back(1f);
            model.Step(lr);

            double done = steps is long total ? (double)step / total : elapsed / seconds;
            int point = Math.Min(CurvePoints - 1, (int)(done * CurvePoints));
            curve[point] += loss;
            counts[point]++;
            step++;
            if ((steps is long n && step >= n) || stop.IsCancellationRequested) break;
            // reading the clock every 16 steps keeps it out of the profile, even at tiny batches
            if (step % 16 != 0) continue;
            elapsed = clock.Elapsed.TotalSeconds;
            if (steps is null && elapsed >= seconds) break;
            if (progress is not null && elapsed - lastReport >= 0.25)
            {
                progress(step, elapsed, loss);
                lastReport = elapsed;
            }
        }
        elapsed = clock.Elapsed.TotalSeconds;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        var lossCurve = curve.Zip(counts, (sum, count) => count > 0 ? (float)(sum / count) : float.NaN).ToArray();
        return new(step, elapsed, loss, allocated / step, lossCurve, stop.IsCancellationRequested);
    }

    /// <summary>Mean loss over every example of a set, in batches, without training.</summary>
    public static double Evaluate(Model model, Examples set)
    {
        double total = 0;
        for (int start = 0; start < set.Count; start += model.BatchSize)
        {
            int n = Math.Min(model.BatchSize, set.Count - start);
            for (int b = 0; b < n; b++) model.SetExample(b, set, start + b);
            total += (double)model.Loss(n).Value * n;
        }
        return total / set.Count;
    }

    /// <summary>The validation loss of the simplest model there is, for comparison: the next
    /// character's probability given only the previous one, from counts in the training examples
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
    int MaxLength = Limits.MaxNameLength, bool Unique = false, bool NewOnly = false);

internal static class Sampling
{
    /// <summary>One name, a character at a time after the prefix, each drawn from
    /// softmax(logits / temperature) over the topK most likely characters, until the boundary
    /// comes up or the name is longer than MaxLength.</summary>
    public static string Sample(Model model, Vocabulary vocab, Rng rng, SamplingRules rules)
    {
        Span<int> context = stackalloc int[model.K];
        context.Fill(Vocabulary.Boundary);
        var name = new List<int>();
        foreach (var c in vocab.Encode(rules.Prefix)) Push(c, context, name);
        var weights = new double[model.V];
        // one character past MaxLength is enough to know that a name is too long
        while (name.Count <= rules.MaxLength)
        {
            model.SetContext(0, context);
            var logits = model.Logits(1).Value.AsSpan(0, model.V);
            // only the topK most likely characters may come next (ties broken by id)
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
                    next = c; // if rounding leaves u above 0 at the end, the last allowed character
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

    /// <summary>`count` names that keep the rules, drawn until found; a name that breaks a rule is
    /// drawn again, up to 100 tries per name (and 1,000 at least) before giving up.</summary>
    public static List<string> SampleMany(Model model, Vocabulary vocab, Rng rng, SamplingRules rules,
        int count, IReadOnlySet<string> training)
    {
        var names = new List<string>(count);
        var seen = new HashSet<string>();
        long tries = 0, maxTries = Math.Max(1000, 100L * count);
        while (names.Count < count)
        {
            if (++tries > maxTries)
                throw new UserError(1, $"found only {names.Count} of {count} names that keep the sampling rules in {maxTries:N0} tries; loosen --min-length, --max-length, --prefix, --unique or --new-only");
            var name = Sample(model, vocab, rng, rules);
            int length = Names.Length(name);
            bool keep = length >= rules.MinLength && length <= rules.MaxLength
                && !(rules.NewOnly && training.Contains(name))
                && !(rules.Unique && seen.Contains(name));
            if (!keep) continue;
            seen.Add(name);
            names.Add(name);
        }
        return names;
    }
}

// ================================================================================================
// Model files
// ================================================================================================
// Format, little-endian: the 8 bytes "BABYNAME", a uint32 version (1), then sizes (int32 V, K, D,
// Width, Vw, Vp, positional as a byte), the vocabulary (V−1 int32 code points, the boundary left
// out), the figures of the run that made it (int32 names read, int64 steps, float64 train loss,
// validation loss, the count bigram's validation loss, the mean name length), the training names
// (an int32 count, then each name as a .NET string), the three tables as float32 (Embedding,
// Weight, Bias), and last an 8-byte FNV-1a hash of everything before it, so that a damaged file
// is caught.

/// <summary>A trained model with everything needed to sample from it.</summary>
internal sealed record Trained(Model Model, Vocabulary Vocab, IReadOnlySet<string> TrainingNames, int NameCount,
    long Steps, double TrainLoss, double ValidationLoss, double BigramLoss, double MeanLength);

internal static class ModelFile
{
    static readonly byte[] Magic = "BABYNAME"u8.ToArray();
    const uint Version = 1;

    /// <summary>Writes to a temporary file beside the target and renames it into place, so that an
    /// interrupted save never leaves a broken model behind.</summary>
    public static void Save(Trained t, string path)
    {
        var body = new MemoryStream();
        using (var w = new BinaryWriter(body, Encoding.UTF8, leaveOpen: true))
        {
            var m = t.Model;
            w.Write(Magic);
            w.Write(Version);
            foreach (var size in (int[])[m.V, m.K, m.D, m.Width, m.Weight.Rows, m.Bias.Cols]) w.Write(size);
            w.Write(m.Positional);
            foreach (var c in t.Vocab.Characters) w.Write(c.Value);
            w.Write(t.NameCount);
            w.Write(t.Steps);
            foreach (var figure in (double[])[t.TrainLoss, t.ValidationLoss, t.BigramLoss, t.MeanLength]) w.Write(figure);
            w.Write(t.TrainingNames.Count);
            foreach (var name in t.TrainingNames) w.Write(name);
            foreach (var table in m.Params) foreach (var x in table.Data) w.Write(x);
        }
        body.Write(BitConverter.GetBytes(Fnv1a(body.GetBuffer().AsSpan(0, (int)body.Length))));
        string full = Path.GetFullPath(path), temporary = full + ".tmp-" + Environment.ProcessId;
        try
        {
            File.WriteAllBytes(temporary, body.ToArray());
            File.Move(temporary, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (File.Exists(temporary)) File.Delete(temporary);
            throw new UserError(1, $"cannot save the model to '{path}': {e.Message}");
        }
    }

    public static Trained Load(string path, int batchSize)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserError(1, Directory.Exists(path) ? $"model file '{path}' is a directory" : $"cannot read model file '{path}': {e.Message}");
        }
        UserError Bad(string why) => new(1, $"model file '{path}' {why}; save a new one with --save");
        if (bytes.Length < Magic.Length + 4 || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw Bad("is not a BabyNames model");
        if (BitConverter.ToUInt32(bytes, Magic.Length) != Version)
            throw Bad($"has format version {BitConverter.ToUInt32(bytes, Magic.Length)}, and this program reads version {Version}");
        if (bytes.Length < 20 || Fnv1a(bytes.AsSpan(0, bytes.Length - 8)) != BitConverter.ToUInt64(bytes, bytes.Length - 8))
            throw Bad("is damaged (truncated or changed)");
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes, Magic.Length + 4, bytes.Length - Magic.Length - 12), Encoding.UTF8);
            int V = r.ReadInt32(), K = r.ReadInt32(), D = r.ReadInt32(), width = r.ReadInt32(), rows = r.ReadInt32(), Vp = r.ReadInt32();
            bool positional = r.ReadBoolean();
            if (V < 2 || V > Limits.MaxVocabulary || K < 1 || K > 16 || D < 1 || D > 1024)
                throw Bad("has sizes this program does not accept");
            var characters = new Rune[V - 1];
            for (int i = 0; i < characters.Length; i++) characters[i] = new Rune(r.ReadInt32());
            var vocab = new Vocabulary(characters);
            var model = new Model(V, K, D, batchSize, positional, new Rng(0));
            if (model.Width != width || model.Weight.Rows != rows || model.Bias.Cols != Vp || vocab.Size != V)
                throw Bad("has table sizes that do not match its header");
            int nameCount = r.ReadInt32();
            long steps = r.ReadInt64();
            double trainLoss = r.ReadDouble(), validationLoss = r.ReadDouble(), bigramLoss = r.ReadDouble(), meanLength = r.ReadDouble();
            if (!Array.TrueForAll([trainLoss, validationLoss, bigramLoss, meanLength], x => double.IsFinite(x) && x >= 0) || steps < 0 || nameCount < 2)
                throw Bad("is damaged");
            var names = new HashSet<string>();
            for (int i = r.ReadInt32(); i > 0; i--) names.Add(r.ReadString());
            foreach (var table in model.Params)
            {
                for (int i = 0; i < table.Data.Length; i++) table.Data[i] = r.ReadSingle();
                if (!Array.TrueForAll(table.Data, float.IsFinite)) throw Bad("is damaged");
            }
            if (r.BaseStream.Position != r.BaseStream.Length) throw Bad("has data past its end");
            return new(model, vocab, names, nameCount, steps, trainLoss, validationLoss, bigramLoss, meanLength);
        }
        catch (Exception e) when (e is IOException or ArgumentException or FormatException)
        {
            throw Bad("is damaged");
        }
    }

    static ulong Fnv1a(ReadOnlySpan<byte> bytes)
    {
        ulong hash = 14695981039346656037UL;
        foreach (var b in bytes) hash = (hash ^ b) * 1099511628211UL;
        return hash;
    }
}

// ================================================================================================
// Command line
// ================================================================================================

internal sealed record Settings(
    double Seconds = 1, long? Steps = null, int Samples = 20, long Seed = 42, string? NamesPath = null,
    int BatchSize = 512, int Context = 6, int Dim = 16, float LearningRate = 0.1f, bool OrderBlind = false,
    SamplingRules? Rules = null, string? SavePath = null, string? LoadPath = null, bool Json = false)
{
    public SamplingRules Sampling => Rules ?? new();
}

internal static class Program
{
    static int Main(string[] args)
    {
        // The first Ctrl+C ends training early and still samples; a second one quits at once.
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = !stop.IsCancellationRequested;
            stop.Cancel();
        };
        return Run(args, Console.Out, Console.Error, stop.Token);
    }

    /// <summary>The whole program: 0 on success, 1 for bad data or a failed run, 2 for a bad
    /// command line. Every failure is one line on stderr and nothing on stdout.</summary>
    internal static int Run(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken stop = default)
    {
        var d = new Settings();
        var r = new SamplingRules();
        var seconds = Number("--seconds", "Seconds of training (wall time)", d.Seconds, 1e-3, 3600, "a number of seconds from 0.001 to 3600");
        var steps = Optional("--steps", "Train exactly this many steps instead of for --seconds (reproducible) [default: none]", 1L, 1_000_000_000L, "a whole number from 1 to 1,000,000,000");
        var samples = Number("--samples", "How many names to print", d.Samples, 0, 100_000, "a whole number from 0 to 100,000");
        var seed = Number("--seed", "Seed for the split, the initial weights, the batches and the samples", d.Seed, long.MinValue, long.MaxValue, "a whole number that fits in 64 bits");
        var names = new Option<string?>("--names") { Description = "Names file, one name a line (UTF-8) [default: the bundled names.txt]" };
        var batchSize = Number("--batch-size", "Examples per SGD step", d.BatchSize, 1, 65_536, "a whole number from 1 to 65,536");
        var context = Number("--context", "Characters of context the model sees", d.Context, 1, 16, "a whole number from 1 to 16");
        var dim = Number("--dim", "Embedding width", d.Dim, 1, 1024, "a whole number from 1 to 1024");
        var lr = Number("--lr", "SGD learning rate", d.LearningRate, float.Epsilon, 1e6f, "a positive number up to 1,000,000");
        var orderBlind = new Option<bool>("--order-blind") { Description = "Share one embedding per character across positions (the seed's model)" };
        var temperature = Number("--temperature", "Sampling temperature: lower is safer, higher is wilder", r.Temperature, 1e-3f, 100f, "a number from 0.001 to 100");
        var topK = Optional("--top-k", "Sample only from the K most likely next characters [default: all]", 1, 100_000, "a whole number from 1 to 100,000");
        var prefix = new Option<string>("--prefix") { Description = "Every name starts with this", DefaultValueFactory = _ => r.Prefix };
        var minLength = Number("--min-length", "Shortest name to print, in characters", r.MinLength, 1, Limits.MaxNameLength, $"a whole number from 1 to {Limits.MaxNameLength}");
        var maxLength = Number("--max-length", "Longest name to print, in characters", r.MaxLength, 1, Limits.MaxNameLength, $"a whole number from 1 to {Limits.MaxNameLength}");
        var unique = new Option<bool>("--unique") { Description = "Never print the same name twice" };
        var newOnly = new Option<bool>("--new-only") { Description = "Print only names that are not in the training data" };
        var save = new Option<string?>("--save") { Description = "Save the trained model to this file" };
        var load = new Option<string?>("--load") { Description = "Sample from a model saved with --save, without training" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of text" };

        var root = new RootCommand("BabyNames: trains a tiny character-level language model for about a second, then invents names.")
        {
            seconds, steps, samples, seed, names, batchSize, context, dim, lr, orderBlind,
            temperature, topK, prefix, minLength, maxLength, unique, newOnly, save, load, json,
        };
        root.SetAction(parsed =>
        {
            var rules = new SamplingRules(parsed.GetValue(temperature), parsed.GetValue(topK),
                parsed.GetValue(prefix)!.Trim().Normalize(NormalizationForm.FormC).ToLowerInvariant(),
                parsed.GetValue(minLength), parsed.GetValue(maxLength), parsed.GetValue(unique), parsed.GetValue(newOnly));
            string? problem = rules.MinLength > rules.MaxLength ? "--min-length must not be more than --max-length"
                : Names.Length(rules.Prefix) > rules.MaxLength ? "--prefix is longer than --max-length"
                : parsed.GetResult(steps) is { Implicit: false } && parsed.GetResult(seconds) is { Implicit: false }
                    ? "--steps and --seconds do not go together: give one of them"
                : null;
            foreach (var option in (Option<string?>[])[names, save, load])
                if (parsed.GetValue(option) is string path && string.IsNullOrWhiteSpace(path))
                    problem ??= $"{option.Name} needs a file name";
            if (parsed.GetValue(load) is not null)
                foreach (var option in (Option[])[names, batchSize, context, dim, lr, orderBlind, seconds, steps])
                    if (parsed.GetResult(option) is { Implicit: false })
                        problem ??= $"{option.Name} is for training, and --load samples from a saved model without training";
            if (problem is not null)
            {
                stderr.WriteLine($"error: {problem} (see --help)");
                return 2;
            }
            return Execute(new Settings(
                parsed.GetValue(seconds), parsed.GetValue(steps), parsed.GetValue(samples), parsed.GetValue(seed),
                parsed.GetValue(names), parsed.GetValue(batchSize), parsed.GetValue(context), parsed.GetValue(dim),
                parsed.GetValue(lr), parsed.GetValue(orderBlind), rules, parsed.GetValue(save), parsed.GetValue(load),
                parsed.GetValue(json)), stdout, stderr, stop);
        });

        // no response files: "--names @list.txt" means the file called @list.txt
        var result = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (result.Errors.Count > 0)
        {
            stderr.WriteLine($"error: {result.Errors[0].Message} (see --help)");
            return 2;
        }
        return result.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
    }

    /// <summary>A numeric option whose parser also checks the range, so that every bad value gets
    /// the same kind of message: "--lr must be a positive number, got '-1'".</summary>
    static Option<T> Number<T>(string name, string description, T defaultValue, T min, T max, string requirement)
        where T : struct, INumber<T> =>
        new(name)
        {
            Description = description,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = result => ParseInRange(result, name, min, max, requirement) ?? defaultValue,
        };

    static Option<T?> Optional<T>(string name, string description, T min, T max, string requirement)
        where T : struct, INumber<T> =>
        new(name) { Description = description, CustomParser = result => ParseInRange(result, name, min, max, requirement) };

    static T? ParseInRange<T>(System.CommandLine.Parsing.ArgumentResult result, string name, T min, T max, string requirement)
        where T : struct, INumber<T>
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (T.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
            return value;
        result.AddError($"{name} must be {requirement}, got '{text}'");
        return null;
    }

    static int Execute(Settings settings, TextWriter stdout, TextWriter stderr, CancellationToken stop)
    {
        try
        {
            bool live = !settings.Json && ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected;
            var report = Report.Build(settings, stop, live ? stderr : null);
            stdout.Write(settings.Json ? report.ToJson() : report.ToText());
            return 0;
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
}

/// <summary>Everything a run produced, printed as text or as JSON.</summary>
internal sealed record Report(Settings Settings, Trained Trained, TrainResult? Training, double StartupSeconds,
    IReadOnlyList<(string Name, bool InTraining)> Samples)
{
    // independent random streams drawn from the one --seed
    const int SplitStream = 1, InitStream = 2, BatchStream = 3, SampleStream = 4;

    /// <summary>Trains (or loads) a model and samples from it. `live`, when given, is the
    /// terminal to show training progress and the loss curve on.</summary>
    public static Report Build(Settings s, CancellationToken stop = default, TextWriter? live = null)
    {
        var rules = s.Sampling;
        Trained trained;
        TrainResult? training = null;
        double startup = 0;
        if (s.LoadPath is string path)
        {
            trained = ModelFile.Load(path, s.BatchSize);
            CheckPrefix(trained.Vocab, rules.Prefix);
        }
        else
        {
            var names = Names.Read(s.NamesPath);
            var corpus = Corpus.Split(names, new Rng(s.Seed, SplitStream));
            CheckPrefix(corpus.Vocab, rules.Prefix);
            var train = new Examples(corpus.Train, corpus.Vocab, s.Context);
            var validation = new Examples(corpus.Validation, corpus.Vocab, s.Context);
            var model = new Model(corpus.Vocab.Size, s.Context, s.Dim, s.BatchSize, !s.OrderBlind, new Rng(s.Seed, InitStream));
            startup = (DateTime.Now - Process.GetCurrentProcess().StartTime).TotalSeconds;
            Action<long, double, float>? progress = live is null ? null : (step, elapsed, loss) =>
                live.Write($"\r\x1b[Kstep {step:N0}  {step * (double)s.BatchSize / elapsed / 1e6:F2} M examples/s  loss {loss:F3}  "
                    + (s.Steps is long n ? $"{n - step:N0} steps left" : $"{Math.Max(0, s.Seconds - elapsed):F1} s left"));
            try
            {
                training = Trainer.Train(model, train, s.LearningRate, s.Seconds, s.Steps, new Rng(s.Seed, BatchStream), stop, progress);
            }
            finally
            {
                live?.Write("\r\x1b[K"); // an error after this is one clean line too
            }
            double validationLoss = Trainer.Evaluate(model, validation);
            // the last update has no loss after it to show a divergence; the validation loss does
            if (!double.IsFinite(validationLoss))
                throw new UserError(1, $"training diverged at step {training.Steps} (validation loss = {validationLoss}); try a smaller --lr");
            trained = new(model, corpus.Vocab, corpus.Train.ToHashSet(), names.Count, training.Steps, training.TrainLoss,
                validationLoss, Trainer.CountBigramLoss(train, validation, corpus.Vocab.Size), names.Average(Names.Length));
        }
        if (s.SavePath is string savePath) ModelFile.Save(trained, savePath);
        var samples = Sampling.SampleMany(trained.Model, trained.Vocab, new Rng(s.Seed, SampleStream), rules, s.Samples, trained.TrainingNames)
            .Select(name => (name, trained.TrainingNames.Contains(name))).ToList();
        if (training is not null) live?.WriteLine($"loss {Sparkline(training.LossCurve)} {training.TrainLoss:F3}");
        return new(s, trained, training, startup, samples);
    }

    static void CheckPrefix(Vocabulary vocab, string prefix)
    {
        if (!vocab.TryEncode(prefix, out _, out var unknown))
            throw new UserError(2, $"--prefix has '{unknown}', which no name in the data has; use only characters from the names");
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

    double ExamplesPerSecond => Training is { Seconds: > 0 } t ? t.Steps * (double)Settings.BatchSize / t.Seconds : 0;
    double NewShare => Samples.Count == 0 ? 0 : Samples.Count(x => !x.InTraining) / (double)Samples.Count;
    double MeanSampleLength => Samples.Count == 0 ? 0 : Samples.Average(x => Names.Length(x.Name));

    public string ToText()
    {
        var inv = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        var t = Trained;
        if (Training is { } run)
        {
            text.AppendLine(inv, $"Elapsed: {run.Seconds:F3} seconds{(run.StoppedEarly ? " (stopped early with Ctrl+C)" : "")}");
            text.AppendLine(inv, $"Steps: {run.Steps:N0} ({ExamplesPerSecond / 1e6:F2} M examples/s)");
        }
        else
            text.AppendLine(inv, $"Loaded: {Settings.LoadPath} (trained for {t.Steps:N0} steps)");
        text.AppendLine(inv, $"Final loss: {t.TrainLoss:F3} (train) {t.ValidationLoss:F3} (validation)");
        text.AppendLine("Samples:");
        int width = Samples.Count.ToString(inv).Length;
        for (int i = 0; i < Samples.Count; i++)
            text.AppendLine(inv, $"{(i + 1).ToString(inv).PadLeft(width + 1)} : {Samples[i].Name}{(Samples[i].InTraining ? " (in training data)" : "")}");
        if (Samples.Count > 0)
            text.AppendLine(inv, $"New names: {Samples.Count(x => !x.InTraining)} of {Samples.Count} ({NewShare * 100:F0}%); mean length {MeanSampleLength:F1} characters (the data's: {t.MeanLength:F1})");
        text.AppendLine(inv, $"Validation loss: {t.ValidationLoss:F3} for this model, {t.BigramLoss:F3} for a count bigram");
        return text.ToString();
    }

    public string ToJson()
    {
        var buffer = new MemoryStream();
        var options = new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        using (var w = new Utf8JsonWriter(buffer, options))
        {
            var t = Trained;
            w.WriteStartObject();
            w.WriteNumber("seconds", Training?.Seconds ?? 0);
            w.WriteNumber("steps", Training?.Steps ?? 0);
            w.WriteNumber("examples", (Training?.Steps ?? 0) * Settings.BatchSize);
            w.WriteNumber("examples_per_second", Math.Round(ExamplesPerSecond));
            w.WriteNumber("train_loss", t.TrainLoss);
            w.WriteNumber("val_loss", t.ValidationLoss);
            w.WriteNumber("bigram_val_loss", t.BigramLoss);
            w.WriteNumber("alloc_bytes_per_step", Training?.AllocatedBytesPerStep ?? 0);
            w.WriteNumber("startup_seconds", StartupSeconds);
            w.WriteBoolean("avx512", Vector512.IsHardwareAccelerated);
            w.WriteBoolean("stopped_early", Training?.StoppedEarly ?? false);
            w.WriteNumber("vocab_size", t.Vocab.Size);
            w.WriteNumber("names", t.NameCount);
            w.WriteNumber("new_share", NewShare);
            w.WriteNumber("mean_length", MeanSampleLength);
            w.WriteNumber("data_mean_length", t.MeanLength);
            w.WriteStartArray("samples");
            foreach (var (name, inTraining) in Samples)
            {
                w.WriteStartObject();
                w.WriteString("name", name);
                w.WriteBoolean("in_training", inTraining);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            var s = Settings;
            var rules = s.Sampling;
            w.WriteStartObject("options");
            // with --load, the training options did not apply: null
            bool trained = Training is not null;
            if (trained) w.WriteString("names_file", s.NamesPath ?? "(bundled)"); else w.WriteNull("names_file");
            if (trained) w.WriteNumber("seconds", s.Seconds); else w.WriteNull("seconds");
            if (trained && s.Steps is long steps) w.WriteNumber("steps", steps); else w.WriteNull("steps");
            w.WriteNumber("samples", s.Samples);
            w.WriteNumber("seed", s.Seed);
            if (trained) w.WriteNumber("batch_size", s.BatchSize); else w.WriteNull("batch_size");
            w.WriteNumber("context", t.Model.K);
            w.WriteNumber("dim", t.Model.D);
            if (trained) w.WriteNumber("lr", s.LearningRate); else w.WriteNull("lr");
            w.WriteBoolean("order_blind", !t.Model.Positional);
            w.WriteNumber("temperature", rules.Temperature);
            if (rules.TopK is int k) w.WriteNumber("top_k", k); else w.WriteNull("top_k");
            w.WriteString("prefix", rules.Prefix);
            w.WriteNumber("min_length", rules.MinLength);
            w.WriteNumber("max_length", rules.MaxLength);
            w.WriteBoolean("unique", rules.Unique);
            w.WriteBoolean("new_only", rules.NewOnly);
            if (s.SavePath is string save) w.WriteString("save", save); else w.WriteNull("save");
            if (s.LoadPath is string load) w.WriteString("load", load); else w.WriteNull("load");
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + Environment.NewLine;
    }
}
