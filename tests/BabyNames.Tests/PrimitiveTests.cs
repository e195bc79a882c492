using System.Runtime.Intrinsics;

namespace BabyNames.Tests;

/// <summary>Forward (and hand-worked backward) of each primitive on cases small enough to check on
/// paper. Every row is 16 floats wide (one vector); only the first few columns carry data.</summary>
public class PrimitiveTests
{
    const int D = 16;

    [Theory]
    [InlineData(1, 16)]
    [InlineData(15, 16)]
    [InlineData(16, 16)]
    [InlineData(17, 32)]
    [InlineData(256, 256)]
    [InlineData(257, 272)]
    public void RoundUpGoesToWholeVectors(int size, int expected) => Assert.Equal(expected, Ops.RoundUp(size));

    [Fact]
    public void ParamStepIsSgdAndZeroesTheGradient()
    {
        var p = new Param(2, D);
        for (int i = 0; i < p.Data.Length; i++) { p.Data[i] = i; p.Grad[i] = i % 3 - 1; }
        p.Step(0.5f);
        for (int i = 0; i < p.Data.Length; i++)
        {
            Assert.Equal(i - 0.5f * (i % 3 - 1), p.Data[i]);
            Assert.Equal(0f, p.Grad[i]);
        }
    }

    [Fact]
    public void ParamZeroGradClearsOnlyTheGradient()
    {
        var p = new Param(1, D);
        Array.Fill(p.Data, 3f);
        Array.Fill(p.Grad, 7f);
        p.ZeroGrad();
        Assert.All(p.Grad, g => Assert.Equal(0f, g));
        Assert.All(p.Data, x => Assert.Equal(3f, x));
    }

    // ---------------------------------------------------------------------------------------------
    // GatherRows

    [Fact]
    public void GatherRowsCopiesTheRowsAskedForIncludingRepeats()
    {
        var table = new Param(3, D);
        for (int r = 0; r < 3; r++)
            for (int d = 0; d < D; d++) table.Data[r * D + d] = r * 100 + d;
        int[] rows = [2, 0, 2, 1];
        var output = new float[4 * D];
        Array.Fill(output, -7f);

        var node = Ops.GatherRows(table, rows, 3, output); // only the first 3 entries of rows

        Assert.Same(output, node.Value);
        for (int d = 0; d < D; d++)
        {
            Assert.Equal(200 + d, output[0 * D + d]);
            Assert.Equal(0 + d, output[1 * D + d]);
            Assert.Equal(200 + d, output[2 * D + d]);
            Assert.Equal(-7f, output[3 * D + d]); // beyond count: untouched
        }
    }

    [Fact]
    public void GatherRowsBackwardAddsEveryUseOfARowIntoItsGradient()
    {
        var table = new Param(3, D);
        Array.Fill(table.Grad, 1f); // gradients accumulate into whatever is there
        int[] rows = [2, 0, 2, 1];
        var node = Ops.GatherRows(table, rows, 3, new float[4 * D]);
        var g = new float[4 * D];
        for (int i = 0; i < 4; i++)
            for (int d = 0; d < D; d++) g[i * D + d] = (i + 1) * (d + 1) * 0.5f;

        node.Back(g);

        for (int d = 0; d < D; d++)
        {
            Assert.Equal(1 + 2 * (d + 1) * 0.5f, table.Grad[0 * D + d]);            // row 0: slot 1
            Assert.Equal(1f, table.Grad[1 * D + d]);                               // row 1: only past count
            Assert.Equal(1 + (1 + 3) * (d + 1) * 0.5f, table.Grad[2 * D + d]);    // row 2: slots 0 and 2
        }
    }

    // ---------------------------------------------------------------------------------------------
    // SumOverK

    [Fact]
    public void SumOverKAddsTheContextPositions()
    {
        const int K = 3;
        var x = new float[3 * K * D]; // room for 3 examples, only 2 used
        for (int d = 0; d < D; d++)
        {
            x[(0 * K + 0) * D + d] = 1 * (d + 1);
            x[(0 * K + 1) * D + d] = 10 * (d + 1);
            x[(0 * K + 2) * D + d] = 100 * (d + 1);
            x[(1 * K + 0) * D + d] = -1;
            x[(1 * K + 1) * D + d] = -2;
            x[(1 * K + 2) * D + d] = -3;
            x[(2 * K + 0) * D + d] = 1000;
        }
        var output = new float[3 * D];
        Array.Fill(output, 5f);

        var node = Ops.SumOverK(TestData.Leaf(x, _ => { }), 2, K, D, output, new float[x.Length]);

        Assert.Same(output, node.Value);
        for (int d = 0; d < D; d++)
        {
            Assert.Equal(111 * (d + 1), output[d]);
            Assert.Equal(-6f, output[D + d]);
            Assert.Equal(5f, output[2 * D + d]); // third example not asked for
        }
    }

    [Fact]
    public void SumOverKBackwardSendsTheSameGradientToEveryPosition()
    {
        const int K = 3, n = 2;
        float[]? received = null;
        var gradX = new float[n * K * D];
        var node = Ops.SumOverK(TestData.Leaf(new float[n * K * D], g => received = g), n, K, D, new float[n * D], gradX);
        var g = new float[n * D];
        for (int i = 0; i < g.Length; i++) g[i] = i * 0.25f - 3;

        node.Back(g);

        Assert.Same(gradX, received);
        for (int b = 0; b < n; b++)
            for (int k = 0; k < K; k++)
                for (int d = 0; d < D; d++)
                    Assert.Equal(g[b * D + d], gradX[(b * K + k) * D + d]);
    }

    // ---------------------------------------------------------------------------------------------
    // MatMul

    static (float[] h, Param W, Param bias) SmallMatMulCase()
    {
        // h: 2 examples, W: 3 characters, bias: one per character; columns past these are zero.
        var h = new float[2 * D];
        h[0] = 1; h[1] = 2;                      // h0 = [1, 2, 0]
        h[D + 1] = -1; h[D + 2] = 3;             // h1 = [0, -1, 3]
        var W = new Param(4, D);                 // MatMul takes W's rows in blocks of 4: row 3 is zero
        W.Data[0] = 1;                           // W0 = [1, 0, 0]
        W.Data[D + 1] = 1; W.Data[D + 2] = 1;    // W1 = [0, 1, 1]
        W.Data[2 * D] = 2; W.Data[2 * D + 1] = -1; W.Data[2 * D + 2] = 0.5f; // W2 = [2, -1, 0.5]
        var bias = new Param(1, 16);
        bias.Data[0] = 0.5f; bias.Data[1] = -1; bias.Data[2] = 2;
        return (h, W, bias);
    }

    [Fact]
    public void MatMulIsHTimesWTransposedPlusBias()
    {
        var (h, W, bias) = SmallMatMulCase();
        var output = new float[2 * 16];
        Array.Fill(output, float.NaN);

        var node = Ops.MatMul(TestData.Leaf(h, _ => { }), W, bias, 2, new float[D * 16], output, new float[2 * D]);

        Assert.Same(output, node.Value);
        // by hand: logits0 = [1+0.5, 2-1, 2-2+2], logits1 = [0+0.5, -1+3-1, 1+1.5+2]
        float[] expected0 = [1.5f, 1f, 2f], expected1 = [0.5f, 1f, 4.5f];
        for (int v = 0; v < 3; v++)
        {
            Assert.Equal(expected0[v], output[v], 1e-6);
            Assert.Equal(expected1[v], output[16 + v], 1e-6);
        }
        for (int j = 3; j < 16; j++)
        {
            Assert.Equal(0f, output[j]);      // padding columns come out zero
            Assert.Equal(0f, output[16 + j]);
        }
    }

    [Fact]
    public void MatMulBackwardGivesAllThreeGradients()
    {
        var (h, W, bias) = SmallMatMulCase();
        float[]? received = null;
        var gradH = new float[2 * D];
        var node = Ops.MatMul(TestData.Leaf(h, g => received = g), W, bias, 2, new float[D * 16], new float[2 * 16], gradH);
        var g = new float[2 * 16];
        g[0] = 1; g[1] = 0; g[2] = -1;           // g0
        g[16] = 2; g[17] = 1; g[18] = 0.5f;      // g1

        node.Back(g);

        Assert.Same(gradH, received);
        // dh[b] = Σ_v g[b,v] W[v]
        AssertRow([-1, 1, -0.5f], gradH, 0);
        AssertRow([3, 0.5f, 1.25f], gradH, D);
        // dW[v] = Σ_b g[b,v] h[b]
        AssertRow([1, 0, 6], W.Grad, 0);
        AssertRow([0, -1, 3], W.Grad, D);
        AssertRow([-1, -2.5f, 1.5f], W.Grad, 2 * D);
        // dbias = Σ_b g[b]
        AssertRow([3, 1, -0.5f], bias.Grad, 0);
    }

    static void AssertRow(float[] expected, float[] actual, int offset, int width = D)
    {
        for (int i = 0; i < width; i++)
            Assert.Equal(i < expected.Length ? expected[i] : 0f, actual[offset + i], 1e-5);
    }

    [Fact]
    public void MatMulMatchesNaiveProductOnWiderShapes()
    {
        // V = 20 → Vp = 32 (two vectors of logits), width 32 (two vectors of h), 5 examples
        const int n = 5, V = 20, Vp = 32, Width = 32;
        var r = new Random(7);
        var h = TestData.Random(r, n * Width);
        var W = new Param(V, Width);
        TestData.Random(r, V * Width).CopyTo(W.Data, 0);
        var bias = new Param(1, Vp);
        TestData.Random(r, V).CopyTo(bias.Data, 0);
        var output = new float[n * Vp];

        Ops.MatMul(TestData.Leaf(h, _ => { }), W, bias, n, new float[Width * Vp], output, new float[n * Width]);

        for (int b = 0; b < n; b++)
        {
            for (int v = 0; v < V; v++)
            {
                double expected = bias.Data[v];
                for (int d = 0; d < Width; d++) expected += (double)h[b * Width + d] * W.Data[v * Width + d];
                Assert.True(Math.Abs(expected - output[b * Vp + v]) < 1e-5, $"b={b} v={v}: {output[b * Vp + v]} vs {expected}");
            }
            for (int v = V; v < Vp; v++) Assert.Equal(0f, output[b * Vp + v]);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // SoftmaxCrossEntropy

    [Fact]
    public void SoftmaxCrossEntropyByHand()
    {
        // row 0: logits ln 1..ln 4 → probabilities 0.1, 0.2, 0.3, 0.4; target 2 → −ln 0.3
        // row 1: all zero → uniform over 4; target 0 → ln 4
        // padding columns hold large values that must not count
        const int V = 4, Vp = 16;
        var logits = new float[2 * Vp];
        for (int v = 0; v < V; v++) logits[v] = (float)Math.Log(v + 1);
        for (int j = V; j < Vp; j++) { logits[j] = 100; logits[Vp + j] = -100; }
        logits[Vp + 5] = 200;
        var probs = new float[2 * Vp];
        var grad = new float[2 * Vp];

        var loss = Ops.SoftmaxCrossEntropy(TestData.Leaf(logits, _ => { }), [2, 0], 2, V, probs, grad);

        Assert.Equal((-Math.Log(0.3) + Math.Log(4)) / 2, loss.Value, 1e-6);
        float[] p0 = [0.1f, 0.2f, 0.3f, 0.4f];
        for (int v = 0; v < V; v++)
        {
            Assert.Equal(p0[v], probs[v], 1e-6);
            Assert.Equal(0.25f, probs[Vp + v], 1e-6);
        }
        for (int j = V; j < Vp; j++)
        {
            Assert.Equal(0f, probs[j]);
            Assert.Equal(0f, probs[Vp + j]);
        }
    }

    [Fact]
    public void SoftmaxCrossEntropyBackwardIsProbabilitiesMinusOneHotOverN()
    {
        const int V = 4, Vp = 16;
        var logits = new float[2 * Vp];
        for (int v = 0; v < V; v++) logits[v] = (float)Math.Log(v + 1);
        for (int j = V; j < Vp; j++) logits[j] = 100;
        float[]? received = null;
        var grad = new float[2 * Vp];
        Array.Fill(grad, float.NaN);
        var loss = Ops.SoftmaxCrossEntropy(TestData.Leaf(logits, g => received = g), [2, 0], 2, V, new float[2 * Vp], grad);

        loss.Back(2f); // dL/dloss = 2 → every gradient doubles

        Assert.Same(grad, received);
        float[] g0 = [0.1f, 0.2f, 0.3f - 1, 0.4f], g1 = [0.25f - 1, 0.25f, 0.25f, 0.25f];
        for (int v = 0; v < V; v++)
        {
            Assert.Equal(2 * g0[v] / 2, grad[v], 1e-6);
            Assert.Equal(2 * g1[v] / 2, grad[Vp + v], 1e-6);
        }
        for (int j = V; j < Vp; j++)
        {
            Assert.Equal(0f, grad[j]);
            Assert.Equal(0f, grad[Vp + j]);
        }
    }

    [Theory]
    [InlineData(2, 1)]
    [InlineData(16, 5)]
    [InlineData(37, 6)]   // Vp = 48: a partial last vector
    [InlineData(256, 3)]  // the largest vocabulary
    public void SoftmaxCrossEntropyMatchesNaiveLogSoftmax(int V, int n)
    {
        int Vp = Ops.RoundUp(V);
        var r = new Random(V * 31 + n);
        var logits = TestData.Random(r, n * Vp, 6);
        for (int b = 0; b < n; b++)
            for (int j = V; j < Vp; j++) logits[b * Vp + j] = 1e4f; // padding: would dominate if read
        if (n > 1) for (int v = 0; v < V; v++) logits[Vp + v] += 1000; // large but equal offset: still stable
        int[] targets = Enumerable.Range(0, n).Select(_ => r.Next(V)).ToArray();
        var probs = new float[n * Vp];

        var loss = Ops.SoftmaxCrossEntropy(TestData.Leaf(logits, _ => { }), targets, n, V, probs, new float[n * Vp]);

        double expected = 0;
        for (int b = 0; b < n; b++)
        {
            var logp = Reference.LogSoftmax(logits, b * Vp, V);
            expected -= logp[targets[b]];
            for (int v = 0; v < V; v++)
                Assert.True(Math.Abs(probs[b * Vp + v] - Math.Exp(logp[v])) < 1e-6, $"p[{b},{v}] = {probs[b * Vp + v]} vs {Math.Exp(logp[v])}");
            for (int j = V; j < Vp; j++) Assert.Equal(0f, probs[b * Vp + j]);
        }
        expected /= n;
        Assert.True(Math.Abs(loss.Value - expected) <= 2e-6 * Math.Max(1, expected), $"loss {loss.Value} vs {expected}");
    }

    // ---------------------------------------------------------------------------------------------
    // Exp

    // Ops.Exp's degree-6 Taylor polynomial leaves a truncation error of r⁷/7! ≈ 1.19e-7 at
    // |r| = ln2/2, i.e. 1.69e-7 relative to e^r ≈ 0.707; with the final rounding the worst case
    // is ≈ 2.3e-7 (seen at x ≈ -27.3787), so the 2e-7 bound (and the code's "about 1e-7") fails.
    [Fact]
    public void ExpMatchesMathExpOnMinus87ToZero() => AssertExpRelativeErrorBelow(2e-7);

    // A coarser guard that stays on while the strict test above is skipped: catches a broken
    // reduction or polynomial (errors of 1e-4 and up), not the last-bit shortfall.
    [Fact]
    public void ExpIsCloseToMathExpOnMinus87ToZero() => AssertExpRelativeErrorBelow(5e-7);

    static void AssertExpRelativeErrorBelow(double bound)
    {
        // ~2.2 million points spread over the range, plus its ends
        const int count = 1 << 21;
        var xs = new float[count + 16];
        for (int i = 0; i < count; i++) xs[i] = (float)(-87.0 * i / (count - 1));
        xs[count] = -87f; xs[count + 1] = 0f; xs[count + 2] = -0f; xs[count + 3] = -1e-30f;
        xs[count + 4] = -0.5f * 0.6931472f; xs[count + 5] = 0.5f * -0.6931472f - 1e-7f; xs[count + 6] = -86.99999f;
        for (int i = count + 7; i < xs.Length; i++) xs[i] = -(i - count);

        double worst = 0;
        float worstX = 0;
        for (int i = 0; i < xs.Length; i += 16)
        {
            var y = Ops.Exp(Vector512.Create(xs.AsSpan(i, 16)));
            for (int lane = 0; lane < 16; lane++)
            {
                double exact = Math.Exp(xs[i + lane]);
                double rel = Math.Abs(y[lane] - exact) / exact;
                if (rel > worst) { worst = rel; worstX = xs[i + lane]; }
            }
        }
        Assert.True(worst < bound, $"worst relative error {worst:E3} at x = {worstX:R}");
    }

    [Fact]
    public void ExpOfZeroIsExactlyOne()
    {
        var y = Ops.Exp(Vector512<float>.Zero);
        for (int lane = 0; lane < 16; lane++) Assert.Equal(1f, y[lane]);
    }

    [Fact]
    public void ExpBelowMinus87IsTinyAndFinite()
    {
        var y = Ops.Exp(Vector512.Create(-1000f));
        for (int lane = 0; lane < 16; lane++)
        {
            Assert.True(float.IsFinite(y[lane]) && y[lane] >= 0 && y[lane] < 1e-37f, $"exp(-1000) gave {y[lane]}");
        }
    }
}
