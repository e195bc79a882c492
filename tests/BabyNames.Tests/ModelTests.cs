namespace BabyNames.Tests;

/// <summary>The model as a whole: its forward against a naive reference, its shapes, fan-out, and
/// the bookkeeping of gradients between steps.</summary>
public class ModelTests
{
    static (int[][] contexts, int[] targets) Batch(Examples ex, params int[] indices) =>
        (indices.Select(i => Enumerable.Range(0, ex.K).Select(k => (int)ex.Context(i)[k]).ToArray()).ToArray(),
         indices.Select(i => (int)ex.Next(i)).ToArray());

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void LossMatchesNaiveDoubleReference(bool positional)
    {
        var (model, ex) = GradientCheckTests.SmallModel(positional);
        int[] picks = [7, 12, 3];
        for (int s = 0; s < 3; s++) model.SetExample(s, ex, picks[s]);
        var (contexts, targets) = Batch(ex, picks);

        float loss = model.Loss(3).Value;

        double expected = Reference.ModelLoss(model, contexts, targets);
        Assert.True(Math.Abs(loss - expected) < 1e-5, $"{loss} vs {expected}");
    }

    [Fact]
    public void PositionalAndOrderBlindDifferOnlyInHowContextsMapToRows()
    {
        var (positional, ex) = GradientCheckTests.SmallModel(true);
        var (blind, _) = GradientCheckTests.SmallModel(false);
        Assert.Equal(3 * 6, positional.Embedding.Rows); // K·V rows
        Assert.Equal(6, blind.Embedding.Rows);          // V rows
        Assert.Equal(16, positional.Width);
        Assert.Equal(new[] { 8, 16 }, new[] { positional.Weight.Rows, positional.Weight.Cols }); // V rounded up to 4 rows
        Assert.Equal(new[] { 1, 16 }, new[] { positional.Bias.Rows, positional.Bias.Cols });
        Assert.Equal(3, positional.Params.Count);

        // order-blind: [a,b,c] and [c,b,a] are the same bag, so the same logits
        var vocab = new Vocabulary(GradientCheckTests.ModelNames);
        int a = vocab.Encode("a")[0], b = vocab.Encode("b")[0], c = vocab.Encode("c")[0];
        blind.SetContext(0, [a, b, c]);
        blind.SetContext(1, [c, b, a]);
        var logits = blind.Logits(2).Value;
        for (int v = 0; v < 6; v++) Assert.Equal(logits[v], logits[16 + v], 1e-5);

        // positional: they differ
        positional.SetContext(0, [a, b, c]);
        positional.SetContext(1, [c, b, a]);
        var plogits = positional.Logits(2).Value;
        Assert.Contains(Enumerable.Range(0, 6), v => Math.Abs(plogits[v] - plogits[16 + v]) > 1e-3);
    }

    [Theory]
    [InlineData(true, 4)]
    [InlineData(false, 4)]
    [InlineData(true, 20)]
    public void InitializationFillsOnlyTheRealColumns(bool positional, int dim)
    {
        var model = new Model(6, 3, dim, 3, positional, new Rng(1, 2));
        Assert.Equal(Ops.RoundUp(dim), model.Width);
        foreach (var table in new[] { model.Embedding, model.Weight })
            for (int r = 0; r < table.Rows; r++)
                for (int d = 0; d < model.Width; d++)
                {
                    float x = table.Data[r * model.Width + d];
                    if (d < dim) Assert.InRange(x, -0.5f, 0.5f);
                    else Assert.Equal(0f, x);
                }
        Assert.All(model.Bias.Data, x => Assert.Equal(0f, x));
        // not all zero, not all the same
        Assert.True(model.Embedding.Data.Distinct().Count() > 10);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SameExampleTwiceInABatchGivesTheSameMeanGradientAsOnce(bool positional)
    {
        // The mean loss of [e, e] is the loss of [e]: both slots push gradient into the same rows,
        // and those contributions must add up (then halve), not overwrite each other.
        var (twice, ex) = GradientCheckTests.SmallModel(positional, batch: 2);
        var (once, _) = GradientCheckTests.SmallModel(positional, batch: 1);
        twice.SetExample(0, ex, 7);
        twice.SetExample(1, ex, 7);
        once.SetExample(0, ex, 7);

        var lossTwice = twice.Loss(2);
        var lossOnce = once.Loss(1);
        Assert.Equal(lossOnce.Value, lossTwice.Value, 1e-6);
        lossTwice.Back(1f);
        lossOnce.Back(1f);

        for (int p = 0; p < 3; p++)
        {
            var g2 = twice.Params[p].Grad;
            var g1 = once.Params[p].Grad;
            Assert.Contains(g1, g => g != 0);
            for (int i = 0; i < g1.Length; i++)
                Assert.True(Math.Abs(g1[i] - g2[i]) <= 1e-6 + 1e-5 * Math.Abs(g1[i]), $"param {p}[{i}]: {g1[i]} vs {g2[i]}");
        }
    }

    [Fact]
    public void OrderBlindRowUsedTwiceInOneContextGetsBothGradients()
    {
        // Order-blind, context [., d, d]: row d is gathered twice and h = E[.] + 2·E[d], so
        // dL/dE[d] = 2 · dL/dh = 2 · dL/dE[.] (the boundary row is used once).
        var (model, ex) = GradientCheckTests.SmallModel(false, batch: 1);
        model.SetExample(0, ex, 7);
        Assert.Equal(new byte[] { 0, 4, 4 }, ex.Context(7).ToArray()); // '.', 'd', 'd'
        model.Loss(1).Back(1f);
        var g = model.Embedding.Grad;
        int W = model.Width;
        Assert.Contains(g.AsSpan(0, W).ToArray(), x => x != 0);
        for (int d = 0; d < W; d++) Assert.Equal(2 * g[0 * W + d], g[4 * W + d], 1e-6);
        for (int row = 1; row < 4; row++)
            for (int d = 0; d < W; d++) Assert.Equal(0f, g[row * W + d]); // rows not in the context
    }

    [Fact]
    public void ANodeConsumedByTwoOthersGetsBothGradients()
    {
        // One gathered (n,K,D) node feeds two different heads (sum → matmul → loss, each with its
        // own W and buffers). Backpropagating both losses must leave in E.Grad the sum of what
        // each loss alone leaves there.
        const int n = 3, K = 2, D = 16, V = 4;
        var r = new Random(11);
        var E = new Param(6, D);
        for (int i = 0; i < 6; i++) for (int d = 0; d < 5; d++) E.Data[i * D + d] = (float)(r.NextDouble() - 0.5);
        var heads = Enumerable.Range(0, 2).Select(_ =>
        {
            var W = new Param(4, D);
            for (int v = 0; v < V; v++) for (int d = 0; d < 5; d++) W.Data[v * D + d] = (float)(r.NextDouble() - 0.5);
            return (W, bias: new Param(1, 16));
        }).ToArray();
        int[] rows = [0, 5, 2, 2, 4, 1], targets = [1, 3, 0];

        float[] Grad(params int[] which)
        {
            E.ZeroGrad();
            var x = Ops.GatherRows(E, rows, n * K, new float[n * K * D]);
            foreach (int h in which)
            {
                var sum = Ops.SumOverK(x, n, K, D, new float[n * D], new float[n * K * D]);
                var logits = Ops.MatMul(sum, heads[h].W, heads[h].bias, n, new float[D * 16], new float[n * 16], new float[n * D]);
                Ops.SoftmaxCrossEntropy(logits, targets, n, V, new float[n * 16], new float[n * 16]).Back(1f);
            }
            return (float[])E.Grad.Clone();
        }

        float[] first = Grad(0), second = Grad(1), both = Grad(0, 1);
        Assert.Contains(first, g => g != 0);
        Assert.Contains(second, g => g != 0);
        for (int i = 0; i < both.Length; i++) Assert.Equal(first[i] + second[i], both[i], 1e-6);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BackpropagatingTwiceAddsTheGradientTwice(bool positional)
    {
        // Params accumulate; the step buffers in between must be overwritten each time, or the
        // second pass would carry the first one's gradient too.
        var (model, ex) = GradientCheckTests.SmallModel(positional);
        for (int s = 0; s < 3; s++) model.SetExample(s, ex, 2 * s + 1);
        model.Loss(3).Back(1f);
        var first = model.Params.Select(p => (float[])p.Grad.Clone()).ToArray();
        model.Loss(3).Back(1f);
        for (int p = 0; p < 3; p++)
            for (int i = 0; i < first[p].Length; i++)
                Assert.Equal(2 * first[p][i], model.Params[p].Grad[i], 1e-5);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TwoIdenticalStepsFromTheSameStateGiveTheSameUpdate(bool positional)
    {
        var (model, ex) = GradientCheckTests.SmallModel(positional);
        for (int s = 0; s < 3; s++) model.SetExample(s, ex, 3 * s + 2);
        var start = model.Params.Select(p => (float[])p.Data.Clone()).ToArray();

        model.Loss(3).Back(1f);
        model.Step(0.5f);
        var afterFirst = model.Params.Select(p => (float[])p.Data.Clone()).ToArray();
        foreach (var p in model.Params) Assert.All(p.Grad, g => Assert.Equal(0f, g)); // zeroed by Step

        for (int p = 0; p < 3; p++) start[p].CopyTo(model.Params[p].Data, 0); // back to the start
        model.Loss(3).Back(1f);
        model.Step(0.5f);

        for (int p = 0; p < 3; p++)
        {
            Assert.Equal(afterFirst[p], model.Params[p].Data);
            Assert.NotEqual(start[p], afterFirst[p]); // the step did something
        }
    }

    [Fact]
    public void StepMovesAgainstTheGradient()
    {
        // A small SGD step on a fixed batch lowers that batch's loss.
        var (model, ex) = GradientCheckTests.SmallModel(true);
        for (int s = 0; s < 3; s++) model.SetExample(s, ex, s + 4);
        var node = model.Loss(3);
        float before = node.Value;
        node.Back(1f);
        model.Step(0.1f);
        Assert.True(model.Loss(3).Value < before);
    }

    [Fact]
    public void TooLargeBuffersAreACommandLineError()
    {
        var e = Assert.Throws<UserError>(() => new Model(256, 16, 1024, 65_536, true, new Rng(1)));
        Assert.Equal(2, e.ExitCode);
        Assert.Contains("--batch-size", e.Message);
    }
}
