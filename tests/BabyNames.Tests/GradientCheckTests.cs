namespace BabyNames.Tests;

/// <summary>Backpropagators against central finite differences of the float forward passes.</summary>
public class GradientCheckTests
{
    const double Tolerance = 1e-3;

    // Relative error with a floor, so that gradients that are (nearly) zero are compared on an
    // absolute scale: |a - n| / max(|a|, |n|, Floor).
    const double Floor = 1e-2;

    /// <summary>Checks analytic[i] against a central difference (L(x+ε) − L(x−ε)) / (2ε) for every
    /// index of x; the step is what float arithmetic made of x±ε, not exactly 2ε. With
    /// <paramref name="extrapolate"/>, the central differences at ε and ε/2 are combined as
    /// (4·N(ε/2) − N(ε)) / 3 (Richardson), which cancels their O(ε²) error.</summary>
    static void CheckAll(string what, float[] x, float[] analytic, Func<double> loss, float eps, bool extrapolate = false)
    {
        double worst = 0;
        string worstAt = "";
        for (int i = 0; i < x.Length; i++)
        {
            double Central(float e)
            {
                float original = x[i];
                float plus = original + e, minus = original - e;
                x[i] = plus;
                double lossPlus = loss();
                x[i] = minus;
                double lossMinus = loss();
                x[i] = original;
                return (lossPlus - lossMinus) / ((double)plus - minus);
            }
            double numeric = extrapolate ? (4 * Central(eps / 2) - Central(eps)) / 3 : Central(eps);
            double error = Math.Abs(analytic[i] - numeric) / Math.Max(Math.Max(Math.Abs(analytic[i]), Math.Abs(numeric)), Floor);
            if (error > worst) { worst = error; worstAt = $"{what}[{i}]: analytic {analytic[i]:R}, numeric {numeric:R}"; }
        }
        Assert.True(worst < Tolerance, $"relative error {worst:E2} at {worstAt}");
    }

    // Why the nonlinear checks (softmax, whole model) extrapolate with a large ε instead of a plain
    // central difference at ε = 1e-2..1e-3: the forward returns the loss as a float, so every loss
    // value carries up to half an ulp of rounding (an ulp is 2.4e-7 for a loss in [2, 4), 4.8e-7 in
    // [4, 8)), plus Ops.Exp's last-bit error. Divided by 2ε = 2e-2 that is 1e-5..2.4e-5 of noise
    // in the numeric gradient, while tolerance 1e-3 × floor 1e-2 allows only 1e-5 for the many
    // entries whose gradient is below 1e-2. Measured over 40 random small models, plain central
    // differences reach a worst relative error of 8.9e-4 (ε = 1e-2, 2e-2) and 1.5e-3 (ε = 5e-3),
    // and 1.9e-3..4e-3 for the softmax alone (V = 37): 1e-3 is not reachable robustly, and a
    // smaller ε only makes it worse. Richardson removes the O(ε²) truncation error, so ε can be
    // large enough (0.2) that the rounding noise is ~1e-6: the worst relative error measured over
    // 600 random small models is 2.7e-4 (ε = 0.2), and over 400 random softmax cases 3.9e-4
    // (ε = 0.3), so tolerance 1e-3 holds with margin. The linear primitives need no such care: a central
    // difference of a linear function is exact up to rounding, and ε = 1e-2 passes easily.
    const float ModelEps = 0.2f, SoftmaxEps = 0.3f;

    /// <summary>Σ c·out, in double, over a float output.</summary>
    static double Dot(float[] c, float[] output, int length)
    {
        double s = 0;
        for (int i = 0; i < length; i++) s += (double)c[i] * output[i];
        return s;
    }

    // ---------------------------------------------------------------------------------------------
    // Each primitive alone, with L = Σ c ⊙ output for a random c

    [Fact]
    public void GatherRowsGradient()
    {
        const int D = 16, count = 7;
        var r = new Random(1);
        var table = new Param(4, D);
        TestData.Random(r, table.Data.Length).CopyTo(table.Data, 0);
        int[] rows = [3, 1, 3, 0, 1, 3, 2]; // rows used 3, 2, 1 and 1 times
        var output = new float[count * D];
        var c = TestData.Random(r, count * D);

        Ops.GatherRows(table, rows, count, output).Back(c);

        CheckAll("table", table.Data, table.Grad,
            () => { Ops.GatherRows(table, rows, count, output); return Dot(c, output, output.Length); }, 1e-2f);
    }

    [Fact]
    public void SumOverKGradient()
    {
        const int n = 3, K = 4, D = 32;
        var r = new Random(2);
        var x = TestData.Random(r, n * K * D);
        var output = new float[n * D];
        var gradX = new float[x.Length];
        var c = TestData.Random(r, n * D);
        float[] analytic = new float[x.Length];

        Ops.SumOverK(TestData.Leaf(x, g => g.CopyTo(analytic, 0)), n, K, D, output, gradX).Back(c);

        CheckAll("x", x, analytic, () =>
        {
            Ops.SumOverK(TestData.Leaf(x, _ => { }), n, K, D, output, new float[x.Length]);
            return Dot(c, output, output.Length);
        }, 1e-2f);
    }

    [Fact]
    public void MatMulGradient()
    {
        const int n = 3, V = 20, Vp = 32, D = 16;
        var r = new Random(3);
        var h = TestData.Random(r, n * D);
        var W = new Param(V, D);
        TestData.Random(r, W.Data.Length).CopyTo(W.Data, 0);
        var bias = new Param(1, Vp);
        TestData.Random(r, Vp).CopyTo(bias.Data, 0);
        var output = new float[n * Vp];
        var c = TestData.Random(r, n * Vp);
        var analyticH = new float[h.Length];

        Ops.MatMul(TestData.Leaf(h, g => g.CopyTo(analyticH, 0)), W, bias, n, new float[D * Vp], output, new float[n * D]).Back(c);

        double Loss()
        {
            Ops.MatMul(TestData.Leaf(h, _ => { }), W, bias, n, new float[D * Vp], output, new float[n * D]);
            return Dot(c, output, output.Length);
        }
        CheckAll("h", h, analyticH, Loss, 1e-2f);
        CheckAll("W", W.Data, W.Grad, Loss, 1e-2f);
        CheckAll("bias", bias.Data, bias.Grad, Loss, 1e-2f);
    }

    [Theory]
    [InlineData(6, 3)]
    [InlineData(37, 4)]
    public void SoftmaxCrossEntropyGradient(int V, int n)
    {
        int Vp = Ops.RoundUp(V);
        var r = new Random(V + n);
        var logits = TestData.Random(r, n * Vp, 2);
        for (int b = 0; b < n; b++)
            for (int j = V; j < Vp; j++) logits[b * Vp + j] = 0;
        int[] targets = Enumerable.Range(0, n).Select(_ => r.Next(V)).ToArray();
        const float scale = 1.7f; // L = 1.7 · loss
        var analytic = new float[logits.Length];

        Ops.SoftmaxCrossEntropy(TestData.Leaf(logits, g => g.CopyTo(analytic, 0)), targets, n, V, new float[n * Vp], new float[n * Vp]).Back(scale);

        CheckAll("logits", logits, analytic, () =>
            scale * (double)Ops.SoftmaxCrossEntropy(TestData.Leaf(logits, _ => { }), targets, n, V, new float[n * Vp], new float[n * Vp]).Value,
            SoftmaxEps, extrapolate: true);
    }

    // ---------------------------------------------------------------------------------------------
    // The whole model: B = 3, K = 3, D = 4 (width 16), V = 6

    // Vocabulary {boundary, a, b, c, d, e}. Examples, K = 3 (context → next):
    //  "abca": 0:[...]→a 1:[..a]→b 2:[.ab]→c 3:[abc]→a 4:[bca]→.
    //  "ddeb": 5:[...]→d 6:[..d]→d 7:[.dd]→e 8:[dde]→b 9:[deb]→.
    //  "ee":  10:[...]→e 11:[..e]→e 12:[.ee]→.
    internal static readonly string[] ModelNames = ["abca", "ddeb", "ee"];

    internal static (Model model, Examples examples) SmallModel(bool positional, int batch = 3, int seed = 5)
    {
        var vocab = new Vocabulary(ModelNames);
        Assert.Equal(6, vocab.Size);
        var examples = new Examples(ModelNames, vocab, 3);
        var model = new Model(vocab.Size, 3, 4, batch, positional, new Rng(seed, 2));
        return (model, examples);
    }

    static void CheckModel(Model model, int n)
    {
        foreach (var p in model.Params) p.ZeroGrad();
        model.Loss(n).Back(1f);
        var analytic = model.Params.Select(p => (float[])p.Grad.Clone()).ToArray();
        string[] names = ["Embedding", "Weight", "Bias"];
        for (int i = 0; i < 3; i++)
            CheckAll(names[i], model.Params[i].Data, analytic[i], () => model.Loss(n).Value, ModelEps, extrapolate: true);
    }

    [Theory]
    [InlineData(true, 5)]
    [InlineData(false, 5)]
    [InlineData(true, 6)]
    [InlineData(false, 6)]
    public void ModelGradientForEveryParameterEntry(bool positional, int seed)
    {
        var (model, examples) = SmallModel(positional, seed: seed);
        // [.dd]→e gathers d twice (order-blind: the same row), [.ee]→. likewise, [abc]→a
        model.SetExample(0, examples, 7);
        model.SetExample(1, examples, 12);
        model.SetExample(2, examples, 3);
        CheckModel(model, 3);
    }

    [Fact]
    public void TheCheckItselfRejectsAGradientOffByOnePercent()
    {
        var (model, examples) = SmallModel(true);
        for (int s = 0; s < 3; s++) model.SetExample(s, examples, s + 6);
        model.Loss(3).Back(1f);
        var analytic = (float[])model.Weight.Grad.Clone();
        int i = Array.FindIndex(analytic, g => Math.Abs(g) > 0.05f);
        Assert.True(i >= 0);
        analytic[i] *= 1.01f;
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() =>
            CheckAll("Weight", model.Weight.Data, analytic, () => model.Loss(3).Value, ModelEps, extrapolate: true));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ModelGradientWithTheSameExampleTwiceInABatch(bool positional)
    {
        var (model, examples) = SmallModel(positional);
        model.SetExample(0, examples, 8);
        model.SetExample(1, examples, 8);
        model.SetExample(2, examples, 0);
        CheckModel(model, 3);
    }
}
