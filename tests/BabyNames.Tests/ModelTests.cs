namespace BabyNames.Tests;

/// <summary>The model as a whole: its shapes and initialization, its forward pass against the
/// double-precision reference, its cost in multiply-adds, the buffer limit, fan-out, and the
/// bookkeeping of gradients and weights between steps.</summary>
public class ModelTests
{
    static Model Bag(int V, int K, int D, bool positional, int batch, long seed = 1) =>
        new(ModelKind.Bag, V, K, D, 0, positional, batch, new Rng(seed, 2));

    static Model Mlp(int V, int K, int D, int H, int batch, long seed = 1) =>
        new(ModelKind.Mlp, V, K, D, H, true, batch, new Rng(seed, 2));

    static (int Rows, int Cols) Shape(Param p) => (p.Rows, p.Cols);

    // ---------------------------------------------------------------------------------------------
    // Shapes

    [Theory]
    [InlineData(true, 37, 3, 16, 130)]
    [InlineData(false, 37, 3, 20, 10)]
    [InlineData(true, 6, 1, 1, 1)]
    public void BagShapes(bool positional, int V, int K, int D, int batch)
    {
        var m = Bag(V, K, D, positional, batch);
        int Dp = (D + 15) / 16 * 16, Vp = (V + 15) / 16 * 16, Vr = (V + 3) / 4 * 4;
        Assert.Equal((Dp, Vp, Vr, 0), (m.Dp, m.Vp, m.Vr, m.H));
        Assert.Equal(positional, m.Positional);
        Assert.Equal(3, m.Params.Length);
        Assert.Same(m.Embedding, m.Params[0]);
        Assert.Same(m.OutputWeights, m.Params[1]);
        Assert.Same(m.OutputBias, m.Params[2]);
        Assert.Equal((positional ? K * V : V, Dp), Shape(m.Embedding));
        Assert.Equal((Vr, Dp), Shape(m.OutputWeights));
        Assert.Equal((1, Vp), Shape(m.OutputBias));
        Assert.Null(m.HiddenWeights);
        Assert.Null(m.HiddenBias);
        Assert.False(m.UsesTable);
        Assert.Null(m.Table);
    }

    [Theory]
    [InlineData(37, 3, 16, 48, 130)] // B > V: the table
    [InlineData(37, 3, 16, 48, 37)]  // B = V: per example
    [InlineData(37, 3, 16, 48, 38)]  // B = V + 1: the table
    [InlineData(27, 6, 20, 50, 8)]   // padding in D and H
    public void MlpShapes(int V, int K, int D, int H, int batch)
    {
        var m = Mlp(V, K, D, H, batch);
        int Dp = (D + 15) / 16 * 16, Hp = (H + 15) / 16 * 16, Vp = (V + 15) / 16 * 16, Vr = (V + 3) / 4 * 4;
        Assert.Equal((Dp, Hp, Vp, Vr), (m.Dp, m.Hp, m.Vp, m.Vr));
        Assert.True(m.Positional);
        Assert.Equal(new[] { m.Embedding, m.HiddenWeights!, m.HiddenBias!, m.OutputWeights, m.OutputBias }, m.Params);
        Assert.Equal((V, Dp), Shape(m.Embedding));
        Assert.Equal((Hp, K * Dp), Shape(m.HiddenWeights!));
        Assert.Equal((1, Hp), Shape(m.HiddenBias!));
        Assert.Equal((Vr, Hp), Shape(m.OutputWeights));
        Assert.Equal((1, Vp), Shape(m.OutputBias));
        Assert.Equal(batch > V, m.UsesTable);
        if (m.UsesTable) Assert.Equal((K * V, Hp), Shape(m.Table!));
        else Assert.Null(m.Table);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(Model.ShardExamples - 1, 1)]
    [InlineData(2 * Model.ShardExamples - 1, 1)]
    [InlineData(2 * Model.ShardExamples, 2)]
    [InlineData(2 * Model.ShardExamples + 2, 2)]
    [InlineData(3 * Model.ShardExamples + 8, 3)]
    [InlineData(8 * Model.ShardExamples - 1, 7)]
    [InlineData(8 * Model.ShardExamples, 8)]
    [InlineData(20 * Model.ShardExamples, 8)]
    [InlineData(65_536, 8)]
    public void ABatchIsCutIntoShardsOfAtLeastShardExamplesAndAtMostMaxShards(int batch, int shards)
    {
        var m = Bag(5, 2, 4, true, batch);
        Assert.Equal(shards, m.Shards.Length);
        int next = 0;
        foreach (var s in m.Shards)
        {
            Assert.Equal(next, s.Offset);
            Assert.InRange(s.Count, batch / shards, (batch + shards - 1) / shards); // as even as can be
            next += s.Count;
        }
        Assert.Equal(batch, next);
    }

    // ---------------------------------------------------------------------------------------------
    // Initialization

    [Theory]
    [InlineData(true, 4)]
    [InlineData(false, 4)]
    [InlineData(true, 20)]
    [InlineData(true, 64)]
    public void BagInitializationIsUniformInTheRealColumnsAndZeroElsewhere(bool positional, int dim)
    {
        const int V = 37, K = 6;
        var m = Bag(V, K, dim, positional, 3);
        var values = new List<float>();
        foreach (var (table, realRows) in new[] { (m.Embedding, m.Embedding.Rows), (m.OutputWeights, V) })
            for (int r = 0; r < table.Rows; r++)
                for (int d = 0; d < table.Cols; d++)
                {
                    float x = table.Data[r * table.Cols + d];
                    if (r < realRows && d < dim)
                    {
                        Assert.True(x >= -0.5f && x < 0.5f, $"{x}");
                        values.Add(x);
                    }
                    else Assert.Equal(0f, x);
                }
        Assert.All(m.OutputBias.Data, x => Assert.Equal(0f, x));
        // uniform: the mean, the variance (1/12), and a quarter of the values in each quarter of the range
        int n = values.Count;
        double mean = values.Average(x => (double)x), variance = values.Average(x => (x - mean) * (x - mean));
        Assert.InRange(mean, -4 / Math.Sqrt(12 * n), 4 / Math.Sqrt(12 * n));
        Assert.InRange(variance, 1 / 12.0 * (1 - 6 / Math.Sqrt(n)), 1 / 12.0 * (1 + 6 / Math.Sqrt(n)));
        for (int q = 0; q < 4; q++)
        {
            double share = values.Count(x => x >= -0.5 + q * 0.25 && x < -0.25 + q * 0.25) / (double)n;
            Assert.InRange(share, 0.25 - 3 / Math.Sqrt(n), 0.25 + 3 / Math.Sqrt(n));
        }
        Assert.True(values.Distinct().Count() > n * 0.99);
    }

    [Fact]
    public void MlpInitializationHasTheDocumentedScalesAndZeroPadding()
    {
        // D = 100 of Dp = 112 and H = 50 of Hp = 64: padding in both
        const int V = 37, K = 6, D = 100, H = 50;
        var m = Mlp(V, K, D, H, 256, seed: 3);
        double gain = 5.0 / 3 / Math.Sqrt(K * D);

        var e = new List<double>();
        for (int r = 0; r < V; r++)
            for (int d = 0; d < m.Dp; d++)
                if (d < D) e.Add(m.Embedding.Data[r * m.Dp + d]);
                else Assert.Equal(0f, m.Embedding.Data[r * m.Dp + d]);
        AssertNormal(e, 1, "E");

        var w1 = new List<double>();
        for (int h = 0; h < m.Hp; h++)
            for (int k = 0; k < K; k++)
                for (int d = 0; d < m.Dp; d++)
                {
                    float x = m.HiddenWeights!.Data[h * K * m.Dp + k * m.Dp + d];
                    if (h < H && d < D) w1.Add(x);
                    else Assert.Equal(0f, x);
                }
        AssertNormal(w1, gain, "W1");

        var w = new List<double>();
        for (int v = 0; v < m.Vr; v++)
            for (int h = 0; h < m.Hp; h++)
            {
                float x = m.OutputWeights.Data[v * m.Hp + h];
                if (v < V && h < H) w.Add(x);
                else Assert.Equal(0f, x);
            }
        AssertNormal(w, 0.01, "W"); // small: the first predictions are nearly uniform

        var b1 = m.HiddenBias!.Data;
        Assert.All(b1.Skip(H), x => Assert.Equal(0f, x));
        Assert.All(b1.Take(H), x => Assert.InRange(x, -0.05f, 0.05f));
        Assert.All(m.OutputBias.Data, x => Assert.Equal(0f, x));
    }

    /// <summary>Mean 0 and standard deviation σ, to within a few standard errors, and about 68% of
    /// the values within one σ.</summary>
    static void AssertNormal(List<double> values, double sigma, string what)
    {
        int n = values.Count;
        double mean = values.Average(), sd = Math.Sqrt(values.Average(x => (x - mean) * (x - mean)));
        Assert.True(Math.Abs(mean) < 4 * sigma / Math.Sqrt(n), $"{what}: mean {mean} (σ {sigma}, n {n})");
        Assert.True(Math.Abs(sd / sigma - 1) < 4 / Math.Sqrt(2.0 * n), $"{what}: standard deviation {sd}, expected {sigma}");
        double within = values.Count(x => Math.Abs(x) < sigma) / (double)n;
        Assert.True(Math.Abs(within - 0.6827) < 4 * 0.47 / Math.Sqrt(n), $"{what}: {within:P1} within one σ");
    }

    [Theory]
    [InlineData(256)] // the table
    [InlineData(16)]  // per example
    public void TheMlpsFirstLossIsCloseToLnV(int batch)
    {
        var (vocab, ex) = GradientCheckTests.ExamplesOver(36, 6);
        var m = Mlp(vocab.Size, 6, 16, 64, batch, seed: 4);
        double loss = Trainer.Evaluate(m, ex);
        Assert.True(Math.Abs(loss - Math.Log(vocab.Size)) < 0.01, $"first loss {loss:F4}, ln V = {Math.Log(vocab.Size):F4}");
    }

    // ---------------------------------------------------------------------------------------------
    // The buffer limit

    [Fact]
    public void TooLargeBuffersAreACommandLineErrorRaisedBeforeTheyAreAllocated()
    {
        // All of its buffers would come to about 8.5 GB (eight shards of 8,192 examples, each with
        // two (8192,16,1024) buffers of 512 MB); the limit is 1 GB, and it must be refused before
        // a buffer past the limit is allocated.
        GC.Collect();
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<UserError>(() => Bag(256, 16, 1024, true, 65_536));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        GC.Collect();

        Assert.Equal(2, e.ExitCode);
        Assert.Contains("--batch-size", e.Message);
        Assert.Contains("1024 MB", e.Message);
        Assert.True(allocated <= Limits.MaxBufferBytes, $"{allocated:N0} bytes allocated before the refusal");
    }

    [Fact]
    public void TheBufferLimitCountsTheMlpsBuffersToo()
    {
        // the MLP's own tables (W1 alone is 1024 × 16·1024 floats, with its gradient 128 MB) and
        // step buffers at the largest sizes
        var e = Assert.Throws<UserError>(() => Mlp(256, 16, 1024, 1024, 65_536));
        Assert.Equal(2, e.ExitCode);
    }

    // ---------------------------------------------------------------------------------------------
    // The forward pass against the reference

    /// <summary>The shard's logits for the first examples of picks, as log-probabilities, against
    /// Reference.LogProbs; the padding logits are exactly zero.</summary>
    static void AssertLogitsMatchTheReference(Model m, Examples ex, int[] picks)
    {
        var shard = m.Shards[0];
        int n = Math.Min(picks.Length, shard.Count);
        shard.Load(ex, picks.AsSpan(0, n));
        var logits = m.Logits(shard, n).Value;
        double spread = 0;
        for (int b = 0; b < n; b++)
        {
            var row = logits.Skip(b * m.Vp).Take(m.V).Select(x => (double)x).ToArray();
            var actual = Reference.LogSoftmax(row, m.V);
            var context = ex.Context(picks[b]).ToArray().Select(c => (int)c).ToArray();
            var expected = Reference.LogProbs(m, context);
            for (int v = 0; v < m.V; v++)
                Assert.True(Math.Abs(actual[v] - expected[v]) <= 2e-5 * Math.Max(1, Math.Abs(expected[v])),
                    $"example {picks[b]}, letter {v}: {actual[v]:R} vs {expected[v]:R}");
            for (int j = m.V; j < m.Vp; j++) Assert.Equal(0f, logits[b * m.Vp + j]);
            spread = Math.Max(spread, expected.Max() - expected.Min());
        }
        Assert.True(spread > 1, "the model's predictions are too flat to tell anything apart");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BagLogitsMatchTheReference(bool positional)
    {
        var (model, ex, picks) = GradientCheckTests.Bag(positional, 130);
        AssertLogitsMatchTheReference(model, ex, picks);
    }

    [Theory]
    [InlineData(130)] // the table
    [InlineData(37)]  // per example
    public void MlpLogitsMatchTheReference(int batch)
    {
        var (model, ex, picks) = GradientCheckTests.Mlp(batch);
        AssertLogitsMatchTheReference(model, ex, picks);
    }

    [Fact]
    public void TheTableIsMadeAgainAfterTheWeightsChange()
    {
        // LoadWeights and Step change E and W1; the next forward pass must not use the old table
        var (model, ex, picks) = GradientCheckTests.Mlp(130);
        var (other, _, _) = GradientCheckTests.Mlp(130, seed: 8);
        Assert.True(model.UsesTable);
        AssertLogitsMatchTheReference(model, ex, picks);

        var weights = other.Params.Select(p => (float[])p.Data.Clone()).ToArray();
        model.LoadWeights(weights);
        for (int i = 0; i < weights.Length; i++) Assert.Equal(weights[i], model.Params[i].Data);
        AssertLogitsMatchTheReference(model, ex, picks);

        GradientCheckTests.Pass(model, ex, picks, backward: true);
        model.Step(0.5f);
        Assert.NotEqual(weights[0], model.Embedding.Data);
        AssertLogitsMatchTheReference(model, ex, picks);
    }

    [Fact]
    public void SaveWeightsCopiesEveryTable()
    {
        var (model, _, _) = GradientCheckTests.Mlp(130);
        var copies = model.Params.Select(p => new float[p.Data.Length]).ToArray();
        model.SaveWeights(copies);
        for (int i = 0; i < copies.Length; i++)
        {
            Assert.Equal(model.Params[i].Data, copies[i]);
            Assert.NotSame(model.Params[i].Data, copies[i]);
        }
    }

    [Fact]
    public void OrderBlindBagSeesABagOfLettersAndPositionalSeesTheirOrder()
    {
        var vocab = new Vocabulary(GradientCheckTests.SmallNames);
        int a = vocab.Encode("a")[0], b = vocab.Encode("b")[0], c = vocab.Encode("c")[0];
        float[] Logits(bool positional)
        {
            var m = Bag(6, 3, 4, positional, 2);
            var shard = m.Shards[0];
            shard.SetContext([a, b, c]);
            var first = m.Logits(shard, 1).Value.Take(6).ToArray();
            shard.SetContext([c, b, a]);
            var second = m.Logits(shard, 1).Value.Take(6).ToArray();
            return [.. first.Zip(second, (x, y) => x - y)];
        }
        Assert.All(Logits(false), difference => Assert.Equal(0f, difference, 1e-6f));
        Assert.Contains(Logits(true), difference => Math.Abs(difference) > 1e-3);
    }

    // ---------------------------------------------------------------------------------------------
    // Multiply-adds per example: forward and backward (three products) at the real sizes

    [Fact]
    public void MultiplyAddsPerExampleHaveTheirClosedForms()
    {
        // the bag: 3·D·V
        Assert.Equal(3.0 * 16 * 37, Bag(37, 3, 16, true, 130).MultiplyAddsPerExample());    // 1,776
        Assert.Equal(3.0 * 20 * 37, Bag(37, 3, 20, false, 10).MultiplyAddsPerExample());    // real D, not Dp
        // the MLP with its table (B > V): 3·(K·V·D·H / B + H·V)
        Assert.Equal(3 * (3.0 * 37 * 16 * 48 / 130 + 48 * 37), Mlp(37, 3, 16, 48, 130).MultiplyAddsPerExample(), 1e-9);
        Assert.Equal(3 * (648.0 + 1728), Mlp(27, 6, 16, 64, 256).MultiplyAddsPerExample(), 1e-9); // 6·27·16·64 / 256 = 648
        // per example (B ≤ V): 3·(K·D·H + H·V)
        Assert.Equal(3 * (2304.0 + 1776), Mlp(37, 3, 16, 48, 37).MultiplyAddsPerExample());       // 3·16·48, 48·37
        Assert.Equal(3 * (6.0 * 20 * 50 + 50 * 27), Mlp(27, 6, 20, 50, 8).MultiplyAddsPerExample());
    }

    // ---------------------------------------------------------------------------------------------
    // Fan-out and the bookkeeping of gradients

    [Theory]
    [InlineData(false, true, 2)]
    [InlineData(false, false, 2)]
    [InlineData(true, true, 2)]   // the MLP per example (B ≤ V = 6)
    [InlineData(true, true, 12)]  // the MLP's table (B > V)
    public void TheSameExampleManyTimesGivesTheSameMeanGradientAsOnce(bool mlp, bool positional, int copies)
    {
        // the mean loss of [e, e, ...] is the loss of [e]: every copy pushes gradient into the same
        // rows, and those contributions must add up (then divide), not overwrite each other
        var vocab = new Vocabulary(GradientCheckTests.SmallNames);
        var ex = new Examples(GradientCheckTests.SmallNames, vocab, 3);
        Model Make(int batch) => mlp ? Mlp(6, 3, 4, 8, batch, seed: 5) : Bag(6, 3, 4, positional, batch, seed: 5);
        var many = Make(copies);
        var once = Make(1);
        GradientCheckTests.RandomizeOutput(many, new Random(5));
        GradientCheckTests.RandomizeOutput(once, new Random(5));
        Assert.Equal(mlp && copies > 6, many.UsesTable);

        var gMany = GradientCheckTests.Gradient(many, ex, [.. Enumerable.Repeat(7, copies)]);
        var gOnce = GradientCheckTests.Gradient(once, ex, [7]);

        for (int p = 0; p < gOnce.Length; p++)
        {
            Assert.Contains(gOnce[p], g => g != 0);
            for (int i = 0; i < gOnce[p].Length; i++)
                Assert.True(Math.Abs(gOnce[p][i] - gMany[p][i]) <= 1e-6 + 1e-5 * Math.Abs(gOnce[p][i]), $"param {p}[{i}]: {gOnce[p][i]} vs {gMany[p][i]}");
        }
    }

    [Fact]
    public void OrderBlindRowUsedTwiceInOneContextGetsBothGradients()
    {
        // order-blind, context [., d, d]: row d is gathered twice and h = E[.] + 2·E[d], so
        // dL/dE[d] = 2·dL/dh = 2·dL/dE[.] (the boundary row is used once)
        var (model, ex) = GradientCheckTests.SmallBag(false, batch: 1);
        Assert.Equal(new byte[] { 0, 4, 4 }, ex.Context(7).ToArray()); // '.', 'd', 'd'
        var g = GradientCheckTests.Gradient(model, ex, [7])[0];
        int W = model.Dp;
        Assert.Contains(g.AsSpan(0, W).ToArray(), x => x != 0);
        for (int d = 0; d < W; d++) Assert.Equal(2 * g[0 * W + d], g[4 * W + d]);
        for (int row = 1; row < 4; row++)
            for (int d = 0; d < W; d++) Assert.Equal(0f, g[row * W + d]); // rows not in the context
        Assert.All(g.Skip(5 * W), x => Assert.Equal(0f, x));
    }

    [Theory]
    [InlineData(false, 64)]  // the bag, one shard
    [InlineData(true, 37)]   // the MLP per example, one shard
    [InlineData(true, 64)]   // the MLP's table, one shard
    public void BackpropagatingTwiceAddsTheGradientTwice(bool mlp, int batch)
    {
        // The Params' gradients accumulate; the step buffers in between are overwritten each
        // time, or the second pass would carry the first one's gradient too.
        var (model, ex, picks) = mlp ? GradientCheckTests.Mlp(batch, examples: batch) : GradientCheckTests.Bag(true, batch);
        picks = picks[..batch];
        var first = GradientCheckTests.Gradient(model, ex, picks);
        GradientCheckTests.Pass(model, ex, picks, backward: true);
        AssertTwice(first, model);
    }

    /// <summary>The Params' gradients are twice `first`, up to the rounding of adding a second
    /// pass's terms onto the first one's sum (a carried-over buffer would be off by a whole
    /// gradient).</summary>
    static void AssertTwice(float[][] first, Model model)
    {
        for (int p = 0; p < first.Length; p++)
        {
            double scale = first[p].Max(Math.Abs);
            Assert.True(scale > 1e-4);
            for (int i = 0; i < first[p].Length; i++)
                Assert.True(Math.Abs(2 * first[p][i] - model.Params[p].Grad[i]) <= 1e-5 * Math.Abs(first[p][i]) + 1e-6 * scale,
                    $"param {p}[{i}]: {model.Params[p].Grad[i]:R} vs 2 × {first[p][i]:R}");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ShardsBackpropagatingTwiceBeforeACollectAddTheirGradientsTwice(bool mlp)
    {
        // with several shards the backpropagators add into the replicas' gradients, and Collect
        // sums those into the Params once a batch
        var (model, ex, picks) = mlp ? GradientCheckTests.Mlp(GradientCheckTests.TwoShards, examples: GradientCheckTests.TwoShards)
            : GradientCheckTests.Bag(true, GradientCheckTests.TwoShards);
        Assert.Equal(2, model.Shards.Length);
        var first = GradientCheckTests.Gradient(model, ex, picks);
        var table = model.MakeTable();
        foreach (var shard in model.Shards) foreach (var p in shard.Own) p.ZeroGrad();
        for (int pass = 0; pass < 2; pass++)
            foreach (var shard in model.Shards)
            {
                shard.Load(ex, picks.AsSpan(shard.Offset, shard.Count));
                model.Loss(shard, shard.Count).Back((float)shard.Count / picks.Length);
            }
        foreach (var p in model.Params) p.ZeroGrad();
        model.Collect(Shard.Gradients(model.Shards));
        if (table is not null) model.BackTable(table);
        AssertTwice(first, model);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TwoIdenticalStepsFromTheSameStateGiveTheSameUpdate(bool mlp)
    {
        var (model, ex, picks) = mlp ? GradientCheckTests.Mlp(130) : GradientCheckTests.Bag(false, 130);
        var start = model.Params.Select(p => (float[])p.Data.Clone()).ToArray();

        GradientCheckTests.Pass(model, ex, picks, backward: true);
        model.Step(0.5f);
        var afterFirst = model.Params.Select(p => (float[])p.Data.Clone()).ToArray();
        foreach (var p in model.Params) Assert.All(p.Grad, g => Assert.Equal(0f, g)); // zeroed by Step

        model.LoadWeights(start);
        GradientCheckTests.Pass(model, ex, picks, backward: true);
        model.Step(0.5f);

        for (int p = 0; p < start.Length; p++)
        {
            Assert.Equal(afterFirst[p], model.Params[p].Data);
            Assert.NotEqual(start[p], afterFirst[p]); // the step did something
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AStepMovesAgainstTheGradient(bool mlp)
    {
        // a small SGD step on a fixed batch lowers that batch's loss, by about lr·|gradient|²
        var (model, ex, picks) = mlp ? GradientCheckTests.Mlp(130) : GradientCheckTests.Bag(true, 130);
        double before = GradientCheckTests.Pass(model, ex, picks, backward: true);
        double squared = model.Params.Sum(p => p.Grad.Sum(g => (double)g * g));
        const float lr = 0.01f;
        model.Step(lr);
        double after = GradientCheckTests.Pass(model, ex, picks, backward: false);
        Assert.True(Math.Abs((before - after) / (lr * squared) - 1) < 0.05, $"loss {before:R} → {after:R}, lr·|g|² = {lr * squared:R}");
    }
}
