using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace BabyNames.Tests;

/// <summary>Each primitive, forward and backward, against a plain double-precision loop written
/// here, at the shapes the default model runs (so that every kernel path is taken: several 8-row
/// blocks of matmul and a partial one, two 64-row blocks of softmax and a partial one, widths of
/// one, three and four vectors, a vocabulary whose last vector is partial), and Param's own
/// arithmetic.</summary>
public class PrimitiveTests
{
    // The shapes of the default model on a vocabulary of 37: n = 130 examples, K·D = 48, H = 48,
    // V = 37 (Vp = 48, Vr = 40).
    const int N = 130, V = 37, Vp = 48, Vr = 40;

    /// <summary>A (rows, width) table with random values in the first `real` columns of each row,
    /// zero in the rest.</summary>
    static float[] Padded(Random r, int rows, int real, int width, double scale = 1)
    {
        var a = new float[rows * width];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < real; j++) a[i * width + j] = (float)((r.NextDouble() * 2 - 1) * scale);
        return a;
    }

    /// <summary>A float sum of `terms` terms, compared with its exact value: float rounding leaves
    /// well under 1e-5 of the sum of the terms' magnitudes, while a wrong or missing term is a
    /// sizeable share of it.</summary>
    static void AssertSum(double expected, double magnitude, float actual, string where)
    {
        double tolerance = 1e-5 * magnitude + 1e-30;
        Assert.True(Math.Abs(actual - expected) <= tolerance, $"{where}: {actual:R}, expected {expected:R} (tolerance {tolerance:E2})");
    }

    static float[] Filled(int length, float value)
    {
        var a = new float[length];
        Array.Fill(a, value);
        return a;
    }

    [Theory]
    [InlineData(1, 16)]
    [InlineData(15, 16)]
    [InlineData(16, 16)]
    [InlineData(17, 32)]
    [InlineData(37, 48)]
    [InlineData(256, 256)]
    [InlineData(257, 272)]
    public void RoundUpGoesToWholeVectors(int size, int expected) => Assert.Equal(expected, Ops.RoundUp(size));

    // ---------------------------------------------------------------------------------------------
    // Param

    [Fact]
    public void ParamWidthMustBeWholeVectors()
    {
        Assert.Throws<ArgumentException>(() => new Param(2, 20));
        var p = new Param(3, 32);
        Assert.Equal((3, 32, 96, 96), (p.Rows, p.Cols, p.Data.Length, p.Grad.Length));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.01)]
    public void ParamStepIsSgdWithWeightDecayAndZeroesTheGradient(double decay)
    {
        // the gradient of loss + λ/2·|w|² is g + λ·w: w − lr·(g + λ·w)
        var r = new Random(1);
        var p = new Param(3, 32);
        TestData.Random(r, p.Data.Length, 2).CopyTo(p.Data, 0);
        TestData.Random(r, p.Grad.Length, 2).CopyTo(p.Grad, 0);
        var (data, grad) = ((float[])p.Data.Clone(), (float[])p.Grad.Clone());
        const double lr = 0.375;

        p.Step((float)lr, (float)decay);

        for (int i = 0; i < data.Length; i++)
        {
            double expected = data[i] - lr * (grad[i] + decay * data[i]);
            Assert.True(Math.Abs(p.Data[i] - expected) <= 2.4e-7 * (Math.Abs(data[i]) + Math.Abs(lr * grad[i])), $"[{i}] {p.Data[i]} vs {expected}");
            Assert.Equal(0f, p.Grad[i]);
        }
    }

    [Fact]
    public void ParamZeroGradClearsOnlyTheGradient()
    {
        var p = new Param(1, 16);
        Array.Fill(p.Data, 3f);
        Array.Fill(p.Grad, 7f);
        p.ZeroGrad();
        Assert.All(p.Grad, g => Assert.Equal(0f, g));
        Assert.All(p.Data, x => Assert.Equal(3f, x));
    }

    [Fact]
    public void AReplicaSharesTheDataAndOwnsItsGradient()
    {
        var p = new Param(2, 16);
        p.Grad[3] = 5;
        var replica = p.Replica();

        Assert.Same(p.Data, replica.Data);
        Assert.NotSame(p.Grad, replica.Grad);
        Assert.Equal((2, 16), (replica.Rows, replica.Cols));
        Assert.All(replica.Grad, g => Assert.Equal(0f, g));
        replica.Grad[3] = 1;
        Assert.Equal(5f, p.Grad[3]);
    }

    [Fact]
    public void CollectSumsTheReplicasInOrderAndLeavesThemAlone()
    {
        var r = new Random(2);
        var p = new Param(4, 16);
        var replicas = Enumerable.Range(0, 3).Select(_ => p.Replica()).ToArray();
        foreach (var q in replicas) TestData.Random(r, q.Grad.Length).CopyTo(q.Grad, 0);
        Array.Fill(p.Grad, 99f); // overwritten
        var before = replicas.Select(q => (float[])q.Grad.Clone()).ToArray();

        p.Collect([.. replicas.Select(q => q.Grad)]);

        for (int i = 0; i < 64; i++)
        {
            Assert.Equal(before[0][i] + before[1][i] + before[2][i], p.Grad[i]); // in replica order
            for (int s = 0; s < 3; s++) Assert.Equal(before[s][i], replicas[s].Grad[i]);
        }
    }

    [Fact]
    public void AsNodeIsTheDataAndItsBackpropagatorAddsIntoGrad()
    {
        var p = new Param(2, 16);
        for (int i = 0; i < 32; i++) p.Data[i] = i;
        Array.Fill(p.Grad, 1f);
        var node = p.AsNode();
        Assert.Same(p.Data, node.Value);

        var g = Enumerable.Range(0, 32).Select(i => i * 0.5f).ToArray();
        node.Back(g);
        node.Back(g);

        for (int i = 0; i < 32; i++) Assert.Equal(1 + i * 1f, p.Grad[i]);
        Assert.Throws<ArgumentException>(() => node.Back(new float[16])); // AddInto checks the lengths
    }

    // ---------------------------------------------------------------------------------------------
    // GatherRows

    [Theory]
    [InlineData(true)]  // stride V: every position has rows of its own
    [InlineData(false)] // stride 0: one row per letter
    public void GatherRowsMatchesAPlainLoop(bool positional)
    {
        const int K = 3, D = 48;
        int stride = positional ? V : 0, rows = positional ? K * V : V;
        var r = new Random(positional ? 3 : 4);
        var table = new Param(rows, D);
        TestData.Random(r, table.Data.Length).CopyTo(table.Data, 0);
        TestData.Random(r, table.Grad.Length).CopyTo(table.Grad, 0); // gradients add to what is there
        var initial = (float[])table.Grad.Clone();
        // one more example than n, which must be ignored; letters drawn from a few, so that rows
        // repeat across examples, and the first example has one letter at every position
        var ids = Enumerable.Range(0, (N + 1) * K).Select(_ => r.Next(6) * 5).ToArray();
        ids[0] = ids[1] = ids[2] = 10;
        ids[N * K] = ids[N * K + 1] = ids[N * K + 2] = 36; // only the ignored example uses letter 36
        var output = Filled((N + 1) * K * D, float.NaN);

        var node = Ops.GatherRows(table, ids, N, K, stride, output);

        Assert.Same(output, node.Value);
        for (int b = 0; b < N; b++)
            for (int k = 0; k < K; k++)
                for (int d = 0; d < D; d++)
                    Assert.Equal(table.Data[(k * stride + ids[b * K + k]) * D + d], output[(b * K + k) * D + d]);
        Assert.All(output.Skip(N * K * D), x => Assert.True(float.IsNaN(x))); // past n: untouched

        var g = TestData.Random(r, (N + 1) * K * D);
        node.Back(g);

        var sum = new double[table.Grad.Length];
        var magnitude = new double[table.Grad.Length];
        var uses = new int[rows];
        for (int b = 0; b < N; b++)
            for (int k = 0; k < K; k++)
            {
                int row = k * stride + ids[b * K + k];
                uses[row]++;
                for (int d = 0; d < D; d++)
                {
                    sum[row * D + d] += g[(b * K + k) * D + d];
                    magnitude[row * D + d] += Math.Abs(g[(b * K + k) * D + d]);
                }
            }
        Assert.True(uses.Max() >= 10); // rows really are used many times
        for (int i = 0; i < sum.Length; i++)
            AssertSum(initial[i] + sum[i], magnitude[i] + Math.Abs(initial[i]), table.Grad[i], $"grad[{i / D},{i % D}]");
    }

    [Fact]
    public void GatherRowsRefusesALetterPastTheTable()
    {
        var table = new Param(3 * 5, 16); // K = 3 positions of V = 5 letters
        Assert.Throws<ArgumentException>(() => Ops.GatherRows(table, [0, 1, 5], 1, 3, 5, new float[48]));
        Assert.Throws<ArgumentException>(() => Ops.GatherRows(table, [0, -1, 4], 1, 3, 5, new float[48]));
        Assert.Throws<ArgumentException>(() => Ops.GatherRows(table, [0, 1, 15], 1, 3, 0, new float[48]));
        Assert.Throws<ArgumentException>(() => Ops.GatherRows(table, [0, 1, 4], 1, 3, 5, new float[47])); // output too short
        Ops.GatherRows(table, [4, 4, 4], 1, 3, 5, new float[48]);
        Ops.GatherRows(table, [14, 14, 14], 1, 3, 0, new float[48]);
    }

    // ---------------------------------------------------------------------------------------------
    // SumOverK

    [Fact]
    public void SumOverKMatchesAPlainLoop()
    {
        const int K = 3, D = 48;
        var r = new Random(5);
        var x = TestData.Random(r, (N + 1) * K * D, 3);
        var output = Filled((N + 1) * D, float.NaN);
        var gradX = Filled((N + 1) * K * D, float.NaN);
        float[]? received = null;

        var node = Ops.SumOverK(TestData.Leaf(x, g => received = g), N, K, D, output, gradX);

        Assert.Same(output, node.Value);
        for (int b = 0; b < N; b++)
            for (int d = 0; d < D; d++)
            {
                double sum = 0, magnitude = 0;
                for (int k = 0; k < K; k++)
                {
                    sum += x[(b * K + k) * D + d];
                    magnitude += Math.Abs(x[(b * K + k) * D + d]);
                }
                AssertSum(sum, magnitude, output[b * D + d], $"out[{b},{d}]");
            }
        Assert.All(output.Skip(N * D), y => Assert.True(float.IsNaN(y)));

        var g = TestData.Random(r, (N + 1) * D);
        node.Back(g);

        Assert.Same(gradX, received);
        for (int b = 0; b < N; b++)
            for (int k = 0; k < K; k++)
                for (int d = 0; d < D; d++) Assert.Equal(g[b * D + d], gradX[(b * K + k) * D + d]);
        Assert.All(gradX.Skip(N * K * D), y => Assert.True(float.IsNaN(y)));
    }

    // ---------------------------------------------------------------------------------------------
    // Tanh

    [Fact]
    public void TanhOfMatchesMathTanhOverAWideRange()
    {
        // a dense sweep over [−12, 12], and the edges: zero, tiny and subnormal inputs, large ones
        // (where e^(−2|x|) is past Exp's clamp), infinities
        var xs = new List<float>();
        const int sweep = 1 << 20;
        for (int i = 0; i <= sweep; i++) xs.Add((float)(-12.0 + 24.0 * i / sweep));
        foreach (var x in new[] { 0f, 1e-30f, float.Epsilon, 1e-10f, 1e-4f, 0.01f, 0.3465736f, 0.5f, 1f, 4.5f, 9f, 10f, 20f, 30f,
                     43.5f, 44f, 100f, 1e10f, float.MaxValue, float.PositiveInfinity })
        {
            xs.Add(x);
            xs.Add(-x);
        }
        while (xs.Count % 16 != 0) xs.Add(0f);
        var inputs = xs.ToArray();

        double worst = 0;
        float worstX = 0;
        for (int i = 0; i < inputs.Length; i += 16)
        {
            var y = Ops.TanhOf(Vector512.Create(inputs, i));
            for (int lane = 0; lane < 16; lane++)
            {
                float x = inputs[i + lane];
                double error = Math.Abs(y[lane] - Math.Tanh(x));
                if (error > worst) (worst, worstX) = (error, x);
                // at most 1 in size, and the sign of x (of a zero too)
                if (!(Math.Abs(y[lane]) <= 1f) || float.IsNegative(x) != float.IsNegative(y[lane]))
                    Assert.Fail($"tanh({x:R}) = {y[lane]:R}");
            }
        }
        Assert.True(worst <= 2e-7, $"worst absolute error {worst:E3} at x = {worstX:R}");

        var large = Ops.TanhOf(Vector512.Create(-100f, 100f, -30f, 30f, 0f, -0f, 1e-30f, -1e-30f, 0, 0, 0, 0, 0, 0, 0, 0));
        Assert.Equal(new[] { -1f, 1f, -1f, 1f }, new[] { large[0], large[1], large[2], large[3] });
        Assert.Equal(0f, large[4]);
        Assert.Equal(Math.Abs(large[6]), Math.Abs(large[7]));
        Assert.True(Math.Abs(large[6]) <= 1e-30f);
    }

    [Fact]
    public void TanhMatchesAPlainLoopForwardAndBackward()
    {
        const int D = 48;
        var r = new Random(6);
        var x = TestData.Random(r, (N + 1) * D, 3);
        var bias = new Param(1, D);
        TestData.Random(r, D, 0.5).CopyTo(bias.Data, 0);
        TestData.Random(r, D).CopyTo(bias.Grad, 0); // the bias gradient adds to what is there
        var initialBiasGrad = (float[])bias.Grad.Clone();
        var output = Filled((N + 1) * D, float.NaN);
        var gradX = Filled((N + 1) * D, float.NaN);
        float[]? received = null;

        var node = Ops.Tanh(TestData.Leaf(x, g => received = g), bias, N, output, gradX);

        Assert.Same(output, node.Value);
        for (int b = 0; b < N; b++)
            for (int d = 0; d < D; d++)
            {
                double expected = Math.Tanh(x[b * D + d] + bias.Data[d]); // the sum in float, as the formula says
                Assert.True(Math.Abs(output[b * D + d] - expected) <= 2e-7, $"y[{b},{d}] = {output[b * D + d]:R}, tanh = {expected:R}");
            }
        Assert.All(output.Skip(N * D), y => Assert.True(float.IsNaN(y)));

        var g = TestData.Random(r, (N + 1) * D, 2);
        node.Back(g);

        Assert.Same(gradX, received);
        for (int d = 0; d < D; d++)
        {
            double sum = 0, magnitude = 0;
            for (int b = 0; b < N; b++)
            {
                int i = b * D + d;
                double y = output[i], t = Math.Tanh(x[i] + bias.Data[d]);
                // the formula on the output it made, and the true derivative of tanh
                Assert.True(Math.Abs(gradX[i] - g[i] * (1 - y * y)) <= 1e-6 * Math.Abs(g[i]) + 1e-12, $"dx[{b},{d}] = {gradX[i]:R}");
                Assert.True(Math.Abs(gradX[i] - g[i] * (1 - t * t)) <= 1.2e-6 * Math.Abs(g[i]) + 1e-12, $"dx[{b},{d}] = {gradX[i]:R} vs exact");
                sum += g[i] * (1 - y * y);
                magnitude += Math.Abs(g[i] * (1 - y * y));
            }
            AssertSum(initialBiasGrad[d] + sum, magnitude + Math.Abs(initialBiasGrad[d]), bias.Grad[d], $"dbias[{d}]");
        }
        Assert.All(gradX.Skip(N * D), y => Assert.True(float.IsNaN(y)));
    }

    // ---------------------------------------------------------------------------------------------
    // MatMul

    /// <summary>out = h·Wᵀ + bias, in groups, and its three gradients, against plain loops.
    /// h is (n,D); W is (R, groups·D), every row real; bias, if any, (1,Rp) with zero padding.</summary>
    [Theory]
    [InlineData(N, 48, Vr, 1, true)]   // the MLP's output layer, H = 48: 16 blocks of 8 rows and a partial one
    [InlineData(N, 16, Vr, 1, true)]   // the bag's output layer, D = 16
    [InlineData(N, 64, Vr, 1, true)]   // the output layer at the default H = 64
    [InlineData(N, 48, 48, 1, false)]  // the MLP's first layer per example: K·Dp = 48 → H = 48
    [InlineData(V, 16, 48, 3, false)]  // the MLP's table: E (37,16) times W1 (48, 3·16) in K = 3 groups
    [InlineData(V, 16, 64, 4, false)]  // the table at K = 4, H = 64: W1 of width 64
    [InlineData(7, 32, 20, 2, true)]   // groups with a bias; a single partial block
    [InlineData(1, 16, 4, 1, true)]    // one example, four rows of W: Rp = 16
    [InlineData(9, 16, 36, 1, false)]  // one block and one row
    public void MatMulMatchesAPlainLoop(int n, int D, int R, int groups, bool withBias)
    {
        int Rp = Ops.RoundUp(R), C = groups * D;
        var r = new Random(n * 1000 + D * 10 + R + groups);
        var h = TestData.Random(r, n * D);
        var W = new Param(R, C);
        TestData.Random(r, W.Data.Length).CopyTo(W.Data, 0);
        TestData.Random(r, W.Grad.Length).CopyTo(W.Grad, 0);
        var initialWGrad = (float[])W.Grad.Clone();
        Param? bias = null;
        float[] initialBiasGrad = new float[Rp];
        if (withBias)
        {
            bias = new Param(1, Rp);
            TestData.Random(r, R).CopyTo(bias.Data, 0); // padding stays zero, as in the model
            TestData.Random(r, Rp).CopyTo(bias.Grad, 0);
            initialBiasGrad = (float[])bias.Grad.Clone();
        }
        var output = Filled((groups * n + 1) * Rp, float.NaN); // one row more than it may write
        var gradH = Filled((n + 1) * D, float.NaN);             // overwritten, not added to
        float[]? received = null;

        var node = Ops.MatMul(TestData.Leaf(h, g => received = g), W, bias, n, groups, new float[C * Ops.RoundUp(R, Ops.PairWidth)], output, gradH);

        Assert.Same(output, node.Value);
        for (int g = 0; g < groups; g++)
            for (int b = 0; b < n; b++)
            {
                for (int j = 0; j < R; j++)
                {
                    double sum = bias?.Data[j] ?? 0, magnitude = Math.Abs(sum);
                    for (int d = 0; d < D; d++)
                    {
                        double term = (double)h[b * D + d] * W.Data[j * C + g * D + d];
                        sum += term;
                        magnitude += Math.Abs(term);
                    }
                    AssertSum(sum, magnitude, output[(g * n + b) * Rp + j], $"out[{g * n + b},{j}]");
                }
                for (int j = R; j < Rp; j++) Assert.Equal(0f, output[(g * n + b) * Rp + j]); // past W's rows
            }
        Assert.All(output.Skip(groups * n * Rp), y => Assert.True(float.IsNaN(y)));

        // g in every column, padding too: dh and dW read only W's rows, dbias every column
        var grad = TestData.Random(r, groups * n * Rp);
        node.Back(grad);

        Assert.Same(gradH, received);
        for (int b = 0; b < n; b++)
            for (int d = 0; d < D; d++)
            {
                double sum = 0, magnitude = 0;
                for (int g = 0; g < groups; g++)
                    for (int j = 0; j < R; j++)
                    {
                        double term = (double)grad[(g * n + b) * Rp + j] * W.Data[j * C + g * D + d];
                        sum += term;
                        magnitude += Math.Abs(term);
                    }
                AssertSum(sum, magnitude, gradH[b * D + d], $"dh[{b},{d}]");
            }
        Assert.All(gradH.Skip(n * D), y => Assert.True(float.IsNaN(y)));
        for (int j = 0; j < R; j++)
            for (int c = 0; c < C; c++)
            {
                int g = c / D, d = c % D;
                double sum = initialWGrad[j * C + c], magnitude = Math.Abs(sum);
                for (int b = 0; b < n; b++)
                {
                    double term = (double)grad[(g * n + b) * Rp + j] * h[b * D + d];
                    sum += term;
                    magnitude += Math.Abs(term);
                }
                AssertSum(sum, magnitude, W.Grad[j * C + c], $"dW[{j},{c}]");
            }
        if (bias is not null)
            for (int j = 0; j < Rp; j++)
            {
                double sum = initialBiasGrad[j], magnitude = Math.Abs(sum);
                for (int row = 0; row < groups * n; row++)
                {
                    sum += grad[row * Rp + j];
                    magnitude += Math.Abs(grad[row * Rp + j]);
                }
                AssertSum(sum, magnitude, bias.Grad[j], $"dbias[{j}]");
            }
    }

    [Fact]
    public void MatMulRefusesShapesItCannotRun()
    {
        var h = TestData.Leaf(new float[2 * 16], _ => { });
        float[] wT = new float[32 * 48], output = new float[2 * 48], gradH = new float[2 * 16];
        // rows of W not a multiple of 4
        Assert.Throws<ArgumentException>(() => Ops.MatMul(h, new Param(37, 16), null, 2, 1, wT, output, gradH));
        // a bias that is not (1,Rp)
        Assert.Throws<ArgumentException>(() => Ops.MatMul(h, new Param(40, 16), new Param(1, 64), 2, 1, wT, output, gradH));
        // W's width not groups·D with D whole vectors
        Assert.Throws<ArgumentException>(() => Ops.MatMul(h, new Param(40, 48), null, 2, 2, wT, output, gradH));
        // an output too small for the groups
        Assert.Throws<ArgumentException>(() => Ops.MatMul(h, new Param(40, 32), null, 2, 2, wT, output, gradH));
        Ops.MatMul(h, new Param(40, 16), new Param(1, 48), 2, 1, wT, output, gradH);
    }

    // ---------------------------------------------------------------------------------------------
    // TransposeBlock

    static readonly MethodInfo TransposeBlockMethod =
        typeof(Ops).GetMethod("TransposeBlock", BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)!;

    [Theory]
    [InlineData(16)]
    [InlineData(15)]
    [InlineData(5)]
    [InlineData(1)]
    [InlineData(0)]
    public void TransposeBlockWritesTheTransposeWithMissingRowsAsZero(int rows)
    {
        const int stride = 40, dstStride = 48;
        var src = GC.AllocateArray<float>(16 * stride, pinned: true);
        var dst = GC.AllocateArray<float>(16 * dstStride, pinned: true);
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < stride; j++) src[i * stride + j] = i < rows ? i * 100 + j : float.NaN; // past `rows`: never read
        Array.Fill(dst, -1f);

        // it takes pointers: through reflection, which passes an IntPtr as one
        TransposeBlockMethod.Invoke(null, [Marshal.UnsafeAddrOfPinnedArrayElement(src, 0), stride, rows,
            Marshal.UnsafeAddrOfPinnedArrayElement(dst, 0), dstStride]);

        for (int j = 0; j < 16; j++)
            for (int c = 0; c < dstStride; c++)
                Assert.Equal(c >= 16 ? -1f : c < rows ? c * 100 + j : 0f, dst[j * dstStride + c]);
    }

    // ---------------------------------------------------------------------------------------------
    // SoftmaxCrossEntropy

    [Theory]
    [InlineData(2, 1)]
    [InlineData(16, 5)]
    [InlineData(37, 6)]    // Vp = 48: a partial last vector
    [InlineData(37, 64)]   // exactly one block of 64 rows
    [InlineData(37, 130)]  // two blocks of 64 and a partial one
    [InlineData(256, 3)]   // the largest vocabulary
    public void SoftmaxCrossEntropyMatchesAPlainLoop(int V, int n)
    {
        int Vp = Ops.RoundUp(V);
        var r = new Random(V * 31 + n);
        var logits = TestData.Random(r, (n + 1) * Vp, 6);
        for (int b = 0; b <= n; b++)
            for (int j = V; j < Vp; j++) logits[b * Vp + j] = 1e4f; // padding: would dominate if read
        if (n > 1) for (int v = 0; v < V; v++) logits[Vp + v] += 1000;  // large offsets: still stable
        if (n > 2) for (int v = 0; v < V; v++) logits[2 * Vp + v] -= 1000;
        if (n > 3) logits[3 * Vp + 1] = 90;                               // one letter far above the rest
        var targets = Enumerable.Range(0, n + 1).Select(_ => r.Next(V)).ToArray();
        targets[n] = V; // the example past n is never read
        var probs = Filled((n + 1) * Vp, float.NaN);
        var grad = Filled((n + 1) * Vp, float.NaN);
        float[]? received = null;

        var loss = Ops.SoftmaxCrossEntropy(TestData.Leaf(logits, g => received = g), targets, n, V, probs, grad);

        double expected = 0;
        var p = new double[n * V];
        for (int b = 0; b < n; b++)
        {
            var logp = Reference.LogSoftmax(logits.Skip(b * Vp).Take(V).Select(x => (double)x).ToArray(), V);
            expected -= logp[targets[b]];
            for (int v = 0; v < V; v++)
            {
                p[b * V + v] = Math.Exp(logp[v]);
                Assert.True(Math.Abs(probs[b * Vp + v] - p[b * V + v]) <= 1e-6 * p[b * V + v] + 1e-37, $"p[{b},{v}] = {probs[b * Vp + v]:R} vs {p[b * V + v]:R}");
            }
            for (int j = V; j < Vp; j++) Assert.Equal(0f, probs[b * Vp + j]);
        }
        expected /= n;
        Assert.True(Math.Abs(loss.Value - expected) <= 1e-6 * Math.Max(1, expected), $"loss {loss.Value:R} vs {expected:R}");

        const float scale = 1.7f;
        loss.Back(scale);

        Assert.Same(grad, received);
        for (int b = 0; b < n; b++)
        {
            for (int v = 0; v < V; v++)
            {
                double exact = scale * (p[b * V + v] - (v == targets[b] ? 1 : 0)) / n;
                Assert.True(Math.Abs(grad[b * Vp + v] - exact) <= 2e-6 * scale / n, $"dlogits[{b},{v}] = {grad[b * Vp + v]:R} vs {exact:R}");
            }
            for (int j = V; j < Vp; j++) Assert.Equal(0f, grad[b * Vp + j]);
        }
        Assert.All(probs.Skip(n * Vp), x => Assert.True(float.IsNaN(x)));
        Assert.All(grad.Skip(n * Vp), x => Assert.True(float.IsNaN(x)));
    }

    [Fact]
    public void SoftmaxOfTheLargestVocabularyOverManyRowsKeepsItsProductOfSums()
    {
        // Equal logits give every row the largest sum there is, z = V = 256: a block of 64 rows
        // multiplies to 2^512, which a double holds. The loss is ln 256 whatever the level.
        const int V = 256, n = 130;
        var logits = new float[n * V];
        for (int b = 0; b < n; b++)
            for (int v = 0; v < V; v++) logits[b * V + v] = b % 3 * 40 - 40;
        var targets = Enumerable.Range(0, n).Select(b => b * 7 % V).ToArray();
        var probs = new float[n * V];

        var loss = Ops.SoftmaxCrossEntropy(TestData.Leaf(logits, _ => { }), targets, n, V, probs, new float[n * V]);

        Assert.Equal(Math.Log(V), loss.Value, 1e-6);
        Assert.All(probs, x => Assert.Equal(1.0 / V, x, 1e-9));
    }

    [Fact]
    public void SoftmaxCrossEntropyRefusesATargetPastTheVocabulary()
    {
        var logits = TestData.Leaf(new float[2 * 16], _ => { });
        Assert.Throws<ArgumentException>(() => Ops.SoftmaxCrossEntropy(logits, [0, 5], 2, 5, new float[32], new float[32]));
        Assert.Throws<ArgumentException>(() => Ops.SoftmaxCrossEntropy(logits, [0, -1], 2, 5, new float[32], new float[32]));
        Assert.Throws<ArgumentException>(() => Ops.SoftmaxCrossEntropy(logits, [0, 1], 0, 5, new float[32], new float[32]));
        Ops.SoftmaxCrossEntropy(logits, [0, 4], 2, 5, new float[32], new float[32]);
    }

    // ---------------------------------------------------------------------------------------------
    // Exp

    [Fact]
    public void ExpMatchesMathExpFromMinus87ToZero()
    {
        // about 4 million points over the range, and its ends
        const int count = 1 << 22;
        var xs = new float[count + 16];
        for (int i = 0; i < count; i++) xs[i] = (float)(-87.0 * i / (count - 1));
        float[] edges = [-87f, 0f, -0f, -1e-30f, -float.Epsilon, -0.3465736f, -0.34657362f, -86.99999f, -1f, -2f, -0.6931472f, -10f, -50f, -80f, -1e-7f, -3f];
        edges.CopyTo(xs, count);

        double worst = 0;
        float worstX = 0;
        for (int i = 0; i < xs.Length; i += 16)
        {
            var y = Ops.Exp(Vector512.Create(xs, i));
            for (int lane = 0; lane < 16; lane++)
            {
                double exact = Math.Exp(xs[i + lane]);
                double relative = Math.Abs(y[lane] - exact) / exact;
                if (relative > worst) (worst, worstX) = (relative, xs[i + lane]);
            }
        }
        // the doc comment promises about 1e-7 relative
        Assert.True(worst < 1.5e-7, $"worst relative error {worst:E3} at x = {worstX:R}");
    }

    [Fact]
    public void ExpOfZeroIsExactlyOne()
    {
        var y = Ops.Exp(Vector512<float>.Zero);
        for (int lane = 0; lane < 16; lane++) Assert.Equal(1f, y[lane]);
    }

    [Fact]
    public void ExpIsClampedAtMinus87()
    {
        // below −87 the input is taken as −87: e^−87 ≈ 1.6e−38, a normal float, never 0 or a subnormal
        float atClamp = Ops.Exp(Vector512.Create(-87f))[0];
        Assert.True(Math.Abs(atClamp - Math.Exp(-87)) <= 1.5e-7 * Math.Exp(-87), $"{atClamp:R}");
        Assert.True(float.IsNormal(atClamp));
        var below = Ops.Exp(Vector512.Create(-87.5f, -88f, -100f, -104f, -1000f, float.MinValue, float.NegativeInfinity, -1e30f,
            -87.00001f, -200f, -150f, -90f, -95f, -120f, -500f, -1e6f));
        for (int lane = 0; lane < 16; lane++) Assert.Equal(atClamp, below[lane]);
    }
}
