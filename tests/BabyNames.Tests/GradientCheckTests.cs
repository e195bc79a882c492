namespace BabyNames.Tests;

/// <summary>Backpropagators against central finite differences: each primitive alone, then the
/// whole models, every entry of every parameter, at shapes that cross the kernels' block
/// boundaries; both forms of the MLP's first layer against each other; a batch cut into several
/// shards against one that is not.</summary>
public class GradientCheckTests
{
    // Relative error with a floor, so that gradients that are (nearly) zero are compared on an
    // absolute scale: |a − n| / max(|a|, |n|, Floor).
    const double Tolerance = 1e-3, Floor = 1e-2;

    // A central difference of a function that is linear in the entry (gather, sum, matmul) is
    // exact up to rounding, so ε can be large, which keeps rounding noise small. The nonlinear
    // ones use Richardson extrapolation, (4·N(ε/2) − N(ε))/3, which cancels the O(ε²) truncation
    // error of a central difference, with the loss taken in double from the forward pass's float
    // probabilities (mean of −log p[target]): a float loss would carry half an ulp (~1.2e-7 near
    // 3) of rounding, which Richardson amplifies by up to 3/ε, to ~7e-6 of noise at ε = 0.05,
    // too close to tolerance × floor = 1e-5. Tanh's curvature makes ε = 0.2 too coarse for the
    // MLP (truncation error); at ε = 0.05 the worst error measured over these checks is 6e-4.
    const float LinearEps = 0.25f, TanhEps = 0.1f, SoftmaxEps = 0.2f, ModelEps = 0.05f;

    /// <summary>Checks analytic[i] against the numeric derivative of loss() with respect to x[i],
    /// for every i (or those given). The step is what float arithmetic made of x ± ε.</summary>
    internal static void CheckAll(string what, float[] x, float[] analytic, Func<double> loss, float eps, bool extrapolate,
        IEnumerable<int>? indices = null)
    {
        double worst = 0;
        string worstAt = "";
        foreach (int i in indices ?? Enumerable.Range(0, x.Length))
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
            if (error > worst || double.IsNaN(error)) (worst, worstAt) = (double.IsNaN(error) ? double.PositiveInfinity : error, $"{what}[{i}]: analytic {analytic[i]:R}, numeric {numeric:R}");
        }
        Assert.True(worst < Tolerance, $"relative error {worst:E2} at {worstAt}");
    }

    /// <summary>Σ c·out, in double, over a float output.</summary>
    static double Dot(float[] c, float[] output, int length)
    {
        double s = 0;
        for (int i = 0; i < length; i++) s += (double)c[i] * output[i];
        return s;
    }

    // ---------------------------------------------------------------------------------------------
    // Models and batches, shared with ModelTests and TrainingTests

    /// <summary>The examples of names over `letters` letters (V = letters + 1), context K.</summary>
    internal static (Vocabulary Vocab, Examples Examples) ExamplesOver(int letters, int K)
    {
        var names = TestData.NamesOver(letters);
        var vocab = new Vocabulary(names);
        Assert.Equal(letters + 1, vocab.Size);
        return (vocab, new Examples(names, vocab, K));
    }

    /// <summary>Indices of `count` examples, spread over the set (wrapping around a small one).</summary>
    internal static int[] Picks(Examples ex, int count, int step = 13) => [.. Enumerable.Range(0, count).Select(i => i * step % ex.Count)];

    /// <summary>Fills the real parts of the output layer (and its bias) with values of a useful
    /// size: the MLP starts with a tiny output layer, under which every other gradient is tiny
    /// too and a check of them would pass on the floor alone.</summary>
    internal static void RandomizeOutput(Model m, Random r, double scale = 0.5)
    {
        int width = m.Kind == ModelKind.Mlp ? m.H : m.D;
        for (int v = 0; v < m.V; v++)
        {
            for (int j = 0; j < width; j++) m.OutputWeights.Data[v * m.OutputWeights.Cols + j] = (float)((r.NextDouble() * 2 - 1) * scale);
            m.OutputBias.Data[v] = (float)((r.NextDouble() * 2 - 1) * scale);
        }
        if (m.HiddenBias is { } b1) for (int h = 0; h < m.H; h++) b1.Data[h] = (float)((r.NextDouble() * 2 - 1) * 0.3);
        m.LoadWeights([.. m.Params.Select(p => p.Data)]); // the MLP's table is stale now
    }

    /// <summary>Runs the forward pass over `picks` and, when `backward`, the backward pass of their
    /// mean loss, as a training step does: a batch of B through the shards, each shard's loss
    /// weighted by its share; then the shards' gradients collected, and the table's passed on to
    /// E and W1. More examples than B go through in chunks (only with one shard, whose gradients
    /// are the Params' own and add up; several shards' gradients are collected once a batch).
    /// Returns the mean loss in double, from the probabilities.</summary>
    internal static double Pass(Model m, Examples ex, int[] picks, bool backward)
    {
        Assert.True(m.Shards.Length == 1 || picks.Length == m.BatchSize, "several shards take exactly one batch");
        double total = 0;
        for (int start = 0; start < picks.Length; start += m.BatchSize)
        {
            var chunk = picks.AsSpan(start, Math.Min(m.BatchSize, picks.Length - start));
            var table = m.MakeTable();
            foreach (var shard in m.Shards)
            {
                int n = Math.Min(shard.Count, chunk.Length - shard.Offset);
                if (n <= 0) continue;
                if (backward && m.Shards.Length > 1) foreach (var p in shard.Own) p.ZeroGrad(); // as a training step does
                shard.Load(ex, chunk.Slice(shard.Offset, n));
                var loss = m.Loss(shard, n);
                for (int b = 0; b < n; b++) total -= Math.Log(shard.Probs[b * m.Vp + shard.Targets[b]]);
                if (backward) loss.Back((float)n / picks.Length);
            }
            if (backward)
            {
                m.Collect(Shard.Gradients(m.Shards));
                if (table is not null) m.BackTable(table);
            }
        }
        return total / picks.Length;
    }

    /// <summary>The gradient of the mean loss over `picks` with respect to every Param, from zero.</summary>
    internal static float[][] Gradient(Model m, Examples ex, int[] picks)
    {
        foreach (var p in m.Params) p.ZeroGrad();
        Pass(m, ex, picks, backward: true);
        return [.. m.Params.Select(p => (float[])p.Grad.Clone())];
    }

    static readonly string[] BagNames = ["E", "W", "b"], MlpNames = ["E", "W1", "b1", "W", "b"];

    internal static string ParamName(Model m, int i) => (m.Kind == ModelKind.Mlp ? MlpNames : BagNames)[i];

    /// <summary>Every entry of every Param against finite differences of the mean loss over picks.</summary>
    static void CheckModel(Model m, Examples ex, int[] picks)
    {
        var analytic = Gradient(m, ex, picks);
        Assert.Contains(analytic[0], g => Math.Abs(g) > 1e-3); // the embeddings' gradient is not negligible
        for (int i = 0; i < m.Params.Length; i++)
            CheckAll(ParamName(m, i), m.Params[i].Data, analytic[i], () => Pass(m, ex, picks, backward: false), ModelEps, extrapolate: true);
    }

    // ---------------------------------------------------------------------------------------------
    // Each primitive alone, with L = Σ c ⊙ output for a random c

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void GatherRowsGradient(bool positional)
    {
        const int n = 7, K = 3, V = 5, D = 16;
        var r = new Random(1);
        var table = new Param(positional ? K * V : V, D);
        TestData.Random(r, table.Data.Length).CopyTo(table.Data, 0);
        // letter 3 at every position of the first example and in most others: rows used many times
        int[] ids = [3, 3, 3, 1, 3, 0, 4, 4, 3, 2, 3, 3, 0, 0, 1, 3, 1, 3, 4, 3, 3];
        var output = new float[n * K * D];
        var c = TestData.Random(r, output.Length);

        Ops.GatherRows(table, ids, n, K, positional ? V : 0, output).Back(c);

        CheckAll("table", table.Data, table.Grad,
            () => { Ops.GatherRows(table, ids, n, K, positional ? V : 0, output); return Dot(c, output, output.Length); }, LinearEps, false);
    }

    [Fact]
    public void SumOverKGradient()
    {
        const int n = 3, K = 4, D = 32;
        var r = new Random(2);
        var x = TestData.Random(r, n * K * D);
        var output = new float[n * D];
        var c = TestData.Random(r, n * D);
        var analytic = new float[x.Length];

        Ops.SumOverK(TestData.Leaf(x, g => g.CopyTo(analytic, 0)), n, K, D, output, new float[x.Length]).Back(c);

        CheckAll("x", x, analytic, () =>
        {
            Ops.SumOverK(TestData.Leaf(x, _ => { }), n, K, D, output, new float[x.Length]);
            return Dot(c, output, output.Length);
        }, LinearEps, false);
    }

    [Fact]
    public void TanhGradient()
    {
        const int n = 5, D = 32;
        var r = new Random(3);
        var x = TestData.Random(r, n * D, 2.5);
        var bias = new Param(1, D);
        TestData.Random(r, D, 0.5).CopyTo(bias.Data, 0);
        var output = new float[n * D];
        var c = TestData.Random(r, n * D);
        var analytic = new float[x.Length];

        Ops.Tanh(TestData.Leaf(x, g => g.CopyTo(analytic, 0)), bias, n, output, new float[x.Length]).Back(c);

        double Loss()
        {
            Ops.Tanh(TestData.Leaf(x, _ => { }), bias, n, output, new float[x.Length]);
            return Dot(c, output, output.Length);
        }
        CheckAll("x", x, analytic, Loss, TanhEps, true);
        CheckAll("bias", bias.Data, bias.Grad, Loss, TanhEps, true);
    }

    [Theory]
    [InlineData(9, 32, 20, 1, true)]   // one block of 8 and a partial one, Rp = 32
    [InlineData(6, 16, 8, 3, false)]   // the MLP's table: E (V = 6 letters) times W1 in K = 3 groups
    [InlineData(5, 16, 12, 2, true)]   // groups and a bias
    public void MatMulGradient(int n, int D, int R, int groups, bool withBias)
    {
        int Rp = Ops.RoundUp(R), C = groups * D;
        var r = new Random(4 + n);
        var h = TestData.Random(r, n * D);
        var W = new Param(R, C);
        TestData.Random(r, W.Data.Length).CopyTo(W.Data, 0);
        Param? bias = null;
        if (withBias)
        {
            bias = new Param(1, Rp);
            TestData.Random(r, R).CopyTo(bias.Data, 0);
        }
        var output = new float[groups * n * Rp];
        var c = TestData.Random(r, output.Length);
        var analyticH = new float[h.Length];

        Ops.MatMul(TestData.Leaf(h, g => g.CopyTo(analyticH, 0)), W, bias, n, groups, new float[C * Ops.RoundUp(R, Ops.PairWidth)], output, new float[n * D]).Back(c);

        double Loss()
        {
            Ops.MatMul(TestData.Leaf(h, _ => { }), W, bias, n, groups, new float[C * Ops.RoundUp(R, Ops.PairWidth)], output, new float[n * D]);
            return Dot(c, output, output.Length);
        }
        CheckAll("h", h, analyticH, Loss, LinearEps, false);
        CheckAll("W", W.Data, W.Grad, Loss, LinearEps, false);
        if (bias is not null) CheckAll("bias", bias.Data, bias.Grad, Loss, LinearEps, false);
    }

    [Theory]
    [InlineData(6, 3)]
    [InlineData(37, 70)] // a block of 64 rows and a partial one, a partial last vector
    public void SoftmaxCrossEntropyGradient(int V, int n)
    {
        int Vp = Ops.RoundUp(V);
        var r = new Random(V + n);
        var logits = TestData.Random(r, n * Vp, 2);
        for (int b = 0; b < n; b++)
            for (int j = V; j < Vp; j++) logits[b * Vp + j] = 0;
        int[] targets = [.. Enumerable.Range(0, n).Select(_ => r.Next(V))];
        const float scale = 1.7f; // L = 1.7 · loss
        var analytic = new float[logits.Length];
        var probs = new float[n * Vp];

        Ops.SoftmaxCrossEntropy(TestData.Leaf(logits, g => g.CopyTo(analytic, 0)), targets, n, V, probs, new float[n * Vp]).Back(scale);

        CheckAll("logits", logits, analytic, () =>
        {
            Ops.SoftmaxCrossEntropy(TestData.Leaf(logits, _ => { }), targets, n, V, probs, new float[n * Vp]);
            double total = 0;
            for (int b = 0; b < n; b++) total -= Math.Log(probs[b * Vp + targets[b]]);
            return scale * total / n;
        }, SoftmaxEps, true);
    }

    [Fact]
    public void ANodeConsumedByTwoOthersGetsBothGradients()
    {
        // One gathered (n,K,D) node feeds two heads (sum → matmul → loss, each with its own W and
        // buffers); L = L1 + L2. E's gradient must be the sum of what each head sends back.
        const int n = 3, K = 2, D = 16, V = 5;
        var r = new Random(11);
        var E = new Param(V, D);
        TestData.Random(r, E.Data.Length).CopyTo(E.Data, 0);
        var heads = Enumerable.Range(0, 2).Select(_ =>
        {
            var W = new Param(8, D);
            for (int v = 0; v < V; v++) for (int d = 0; d < D; d++) W.Data[v * D + d] = (float)(r.NextDouble() - 0.5);
            return (W, bias: new Param(1, 16), probs: new float[n * 16]);
        }).ToArray();
        int[] ids = [0, 4, 2, 2, 4, 1], targets = [1, 3, 0];

        double Run(bool backward)
        {
            var x = Ops.GatherRows(E, ids, n, K, 0, new float[n * K * D]);
            double total = 0;
            foreach (var (W, bias, probs) in heads)
            {
                var sum = Ops.SumOverK(x, n, K, D, new float[n * D], new float[n * K * D]);
                var logits = Ops.MatMul(sum, W, bias, n, 1, new float[D * Ops.RoundUp(W.Rows, Ops.PairWidth)], new float[n * 16], new float[n * D]);
                var loss = Ops.SoftmaxCrossEntropy(logits, targets, n, V, probs, new float[n * 16]);
                for (int b = 0; b < n; b++) total -= Math.Log(probs[b * 16 + targets[b]]) / n;
                if (backward) loss.Back(1f);
            }
            return total;
        }

        Run(backward: true);
        var analytic = (float[])E.Grad.Clone();
        CheckAll("E", E.Data, analytic, () => Run(backward: false), ModelEps, true);
    }

    // ---------------------------------------------------------------------------------------------
    // The bag, small: V = 6, K = 3, D = 4 (one vector), B = 3

    // Vocabulary {boundary, a, b, c, d, e}. Examples, K = 3 (context → next):
    //  "abca": 0:[...]→a 1:[..a]→b 2:[.ab]→c 3:[abc]→a 4:[bca]→.
    //  "ddeb": 5:[...]→d 6:[..d]→d 7:[.dd]→e 8:[dde]→b 9:[deb]→.
    //  "ee":  10:[...]→e 11:[..e]→e 12:[.ee]→.
    internal static readonly string[] SmallNames = ["abca", "ddeb", "ee"];

    internal static (Model Model, Examples Examples) SmallBag(bool positional, int batch = 3, int seed = 5)
    {
        var vocab = new Vocabulary(SmallNames);
        Assert.Equal(6, vocab.Size);
        var examples = new Examples(SmallNames, vocab, 3);
        Assert.Equal(13, examples.Count);
        var model = new Model(ModelKind.Bag, vocab.Size, 3, 4, 0, positional, batch, new Rng(seed, 2));
        RandomizeOutput(model, new Random(seed));
        return (model, examples);
    }

    [Theory]
    [InlineData(true, 5)]
    [InlineData(false, 5)]
    [InlineData(true, 6)]
    [InlineData(false, 6)]
    public void SmallBagGradientForEveryParameterEntry(bool positional, int seed)
    {
        // [.dd]→e gathers d twice (order-blind: the same row twice), [.ee]→. likewise, [abc]→a
        var (model, examples) = SmallBag(positional, seed: seed);
        CheckModel(model, examples, [7, 12, 3]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SmallBagGradientWithTheSameExampleTwiceInABatch(bool positional)
    {
        var (model, examples) = SmallBag(positional);
        CheckModel(model, examples, [8, 8, 0]);
    }

    [Fact]
    public void TheCheckItselfRejectsAGradientOffByOnePercent()
    {
        var (model, examples) = SmallBag(true);
        int[] picks = [6, 7, 8];
        var analytic = Gradient(model, examples, picks);
        var W = analytic[1];
        int i = Array.FindIndex(W, g => Math.Abs(g) > 0.05f);
        Assert.True(i >= 0);
        // the true gradient passes ...
        CheckAll("W", model.OutputWeights.Data, W, () => Pass(model, examples, picks, false), ModelEps, true, [i]);
        // ... and 1% off does not
        W[i] *= 1.01f;
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() =>
            CheckAll("W", model.OutputWeights.Data, W, () => Pass(model, examples, picks, false), ModelEps, true, [i]));
    }

    [Fact]
    public void TheCheckRejectsAnMlpGradientOffByOnePercent()
    {
        var (model, ex, picks) = Mlp(130);
        var analytic = Gradient(model, ex, picks);
        var W1 = analytic[1];
        int i = Array.FindIndex(W1, g => Math.Abs(g) > 0.02f);
        Assert.True(i >= 0);
        W1[i] *= 0.99f;
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() =>
            CheckAll("W1", model.HiddenWeights!.Data, W1, () => Pass(model, ex, picks, false), ModelEps, true, [i]));
    }

    // ---------------------------------------------------------------------------------------------
    // The models at the default shapes: V = 37 (Vp = 48, Vr = 40), K = 3, D = 16 (K·D = 48),
    // H = 48, a batch of 130 (32 blocks of 4 rows and a partial one; a softmax block of 64, another
    // and one of 2), or of TwoShards: two shards of Model.ShardExamples + 1

    internal const int TwoShards = 2 * Model.ShardExamples + 2;

    internal static (Model Model, Examples Examples, int[] Picks) Bag(bool positional, int batch, int seed = 7)
    {
        var (vocab, ex) = ExamplesOver(36, 3);
        var model = new Model(ModelKind.Bag, vocab.Size, 3, 16, 0, positional, batch, new Rng(seed, 2));
        RandomizeOutput(model, new Random(seed));
        return (model, ex, Picks(ex, Math.Max(batch, 130)));
    }

    internal static (Model Model, Examples Examples, int[] Picks) Mlp(int batch, int seed = 7, int letters = 36, int H = 48, int examples = 130)
    {
        var (vocab, ex) = ExamplesOver(letters, 3);
        var model = new Model(ModelKind.Mlp, vocab.Size, 3, 16, H, true, batch, new Rng(seed, 2));
        RandomizeOutput(model, new Random(seed));
        return (model, ex, Picks(ex, examples));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BagGradientForEveryParameterEntryAtTheDefaultShapes(bool positional)
    {
        var (model, ex, picks) = Bag(positional, TwoShards);
        Assert.Equal(2, model.Shards.Length);
        CheckModel(model, ex, picks);
    }

    [Fact]
    public void MlpWithTheTableGradientForEveryParameterEntry()
    {
        var (model, ex, picks) = Mlp(TwoShards, examples: TwoShards);
        Assert.True(model.UsesTable);
        Assert.Equal(2, model.Shards.Length);
        CheckModel(model, ex, picks);
    }

    [Fact]
    public void MlpPerExampleGradientForEveryParameterEntry()
    {
        // B = V = 37, per example (10 blocks of 4 rows, the last partial); the same 130 examples
        // go through it in chunks of 37, 37, 37 and 19
        var (model, ex, picks) = Mlp(37);
        Assert.False(model.UsesTable);
        CheckModel(model, ex, picks);
    }

    [Fact]
    public void MlpPerExampleInSeveralShardsGradientForEveryParameterEntry()
    {
        // 255 letters (V = 256 ≥ B = 256): per example, and two shards
        var (model, ex, picks) = Mlp(2 * Model.ShardExamples, letters: 255, H: 16, examples: 2 * Model.ShardExamples);
        Assert.False(model.UsesTable);
        Assert.Equal(2, model.Shards.Length);
        CheckModel(model, ex, picks);
    }

    /// <summary>Same weights, same examples: the losses and every gradient entry agree to 1e-5 of
    /// the largest entry of that gradient, entry by entry (and each entry to 1e-4 of itself
    /// where it is not tiny).</summary>
    static void AssertSameGradients(Model a, Model b, Examples ex, int[] picks)
    {
        for (int i = 0; i < a.Params.Length; i++) a.Params[i].Data.CopyTo(b.Params[i].Data, 0);
        b.LoadWeights([.. b.Params.Select(p => p.Data)]);
        var ga = Gradient(a, ex, picks);
        var gb = Gradient(b, ex, picks);
        double la = Pass(a, ex, picks, false), lb = Pass(b, ex, picks, false);
        Assert.True(Math.Abs(la - lb) <= 1e-6 * la, $"loss {la:R} vs {lb:R}");
        for (int i = 0; i < ga.Length; i++)
        {
            double scale = ga[i].Max(Math.Abs);
            Assert.True(scale > 1e-4, $"{ParamName(a, i)}: a gradient of zeros");
            for (int j = 0; j < ga[i].Length; j++)
            {
                double difference = Math.Abs(ga[i][j] - gb[i][j]);
                Assert.True(difference <= 1e-5 * scale && difference <= 1e-4 * Math.Abs(ga[i][j]) + 1e-6 * scale,
                    $"{ParamName(a, i)}[{j}]: {ga[i][j]:R} vs {gb[i][j]:R} (largest {scale:R})");
            }
        }
    }

    [Fact]
    public void BothFormsOfTheMlpGiveTheSameLossAndGradients()
    {
        var (table, ex, picks) = Mlp(130);
        var perExample = new Model(ModelKind.Mlp, table.V, 3, 16, 48, true, 37, new Rng(99, 2));
        Assert.True(table.UsesTable);
        Assert.False(perExample.UsesTable);
        AssertSameGradients(table, perExample, ex, picks);
    }

    [Theory]
    [InlineData(false, 36, 8 * Model.ShardExamples + 8)]  // the bag, 8 shards of ShardExamples + 1
    [InlineData(false, 36, TwoShards)]                   // the bag, 2 shards
    [InlineData(true, 36, 8 * Model.ShardExamples + 8)]   // the MLP's table, 8 shards
    [InlineData(true, 36, 3 * Model.ShardExamples + 8)]   // the MLP's table, 3 shards, not all the same size
    [InlineData(true, 255, 2 * Model.ShardExamples)]     // the MLP per example (V = 256), 2 shards
    public void TheGradientDoesNotDependOnTheShards(bool mlp, int letters, int batch)
    {
        var kind = mlp ? ModelKind.Mlp : ModelKind.Bag;
        var (vocab, ex) = ExamplesOver(letters, 3);
        Model Make(int b) => new(kind, vocab.Size, 3, 16, 48, true, b, new Rng(3, 2));
        var sharded = Make(batch);
        var single = Make(Model.ShardExamples); // one shard, ShardExamples examples at a time
        Assert.Equal(Math.Clamp(batch / Model.ShardExamples, 1, Model.MaxShards), sharded.Shards.Length);
        Assert.Single(single.Shards);
        Assert.Equal(sharded.UsesTable, single.UsesTable);
        RandomizeOutput(sharded, new Random(3));
        AssertSameGradients(sharded, single, ex, Picks(ex, batch, 7));
    }

    [Theory]
    [InlineData(130)]
    [InlineData(37)]
    public void MlpGradientWithTheSameExampleTwiceAndALetterRepeatedInItsContext(int batch)
    {
        // every example twice in a row; the first example of every name has the boundary at all
        // three positions, so E's boundary row is gathered three times per example
        var (model, ex, _) = Mlp(batch);
        int[] picks = [.. Enumerable.Range(0, 65).SelectMany(i => new[] { i * 5 % ex.Count, i * 5 % ex.Count })];
        Assert.Contains(picks, i => ex.Context(i).ToArray() is [0, 0, 0]);
        CheckModel(model, ex, picks);
    }
}
