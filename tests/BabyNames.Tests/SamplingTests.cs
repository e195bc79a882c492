namespace BabyNames.Tests;

/// <summary>A model trained briefly on the syllable names, shared by the sampling tests (which run
/// one after another: sampling uses the model's step buffers).</summary>
public sealed class TrainedModel
{
    internal Corpus Corpus { get; }
    internal Model Model { get; }

    public TrainedModel()
    {
        Corpus = Corpus.Split([.. TestData.SyllableNames], new Rng(1, 1));
        Model = new Model(Corpus.Vocab.Size, 4, 16, 32, true, new Rng(1, 2));
        Trainer.Train(Model, new Examples(Corpus.Train, Corpus.Vocab, 4), 0.5f, 0, 300, new Rng(1, 3));
    }
}

public class SamplingTests(TrainedModel trained) : IClassFixture<TrainedModel>
{
    Model M => trained.Model;
    Vocabulary Vocab => trained.Corpus.Vocab;

    List<string> Samples(long seed, int count, float temperature = 1, int? topK = null)
    {
        var rng = new Rng(seed, 4);
        return Enumerable.Range(0, count).Select(_ => Sampling.Sample(M, Vocab, rng, new SamplingRules(temperature, topK))).ToList();
    }

    /// <summary>The model's logits (first V) for one context, as doubles.</summary>
    static double[] LogitsFor(Model model, ReadOnlySpan<int> context)
    {
        model.SetContext(0, context);
        return model.Logits(1).Value.AsSpan(0, model.V).ToArray().Select(x => (double)x).ToArray();
    }

    /// <summary>Greedy decoding written out in the test: always the most likely next character.
    /// Also gives the smallest gap between the best and second-best logit on the way.</summary>
    (string name, double smallestGap) Greedy()
    {
        var context = new int[M.K];
        var ids = new List<int>();
        double smallestGap = double.PositiveInfinity;
        while (ids.Count < 50)
        {
            var logits = LogitsFor(M, context);
            var order = Enumerable.Range(0, M.V).OrderByDescending(v => logits[v]).ToArray();
            smallestGap = Math.Min(smallestGap, logits[order[0]] - logits[order[1]]);
            if (order[0] == Vocabulary.Boundary) break;
            ids.Add(order[0]);
            Array.Copy(context, 1, context, 0, M.K - 1);
            context[^1] = order[0];
        }
        return (Vocab.Decode(ids), smallestGap);
    }

    [Fact]
    public void SameSeedGivesTheSameNames()
    {
        var a = Samples(7, 30);
        var b = Samples(7, 30);
        Assert.Equal(a, b);
        Assert.NotEqual(a, Samples(8, 30));
    }

    [Fact]
    public void TopKOneIsGreedyWhateverTheSeed()
    {
        var (greedy, _) = Greedy();
        Assert.NotEqual("", greedy);
        foreach (long seed in new long[] { 1, 2, 3, 99, -5 })
            Assert.All(Samples(seed, 10, temperature: 1, topK: 1), name => Assert.Equal(greedy, name));
        // even at a wild temperature
        Assert.All(Samples(4, 10, temperature: 50, topK: 1), name => Assert.Equal(greedy, name));
    }

    [Fact]
    public void VeryLowTemperatureBehavesLikeGreedy()
    {
        var (greedy, gap) = Greedy();
        // At T = 0.001 the runner-up's weight is e^(−gap/0.001); with a gap of 0.05 that is e^-50.
        Assert.True(gap > 0.05, $"the trained model has a near tie ({gap}); pick another seed for it");
        foreach (long seed in new long[] { 1, 2, 3 })
            Assert.All(Samples(seed, 20, temperature: 0.001f), name => Assert.Equal(greedy, name));
    }

    [Fact]
    public void HighTemperatureGivesMoreDistinctNamesThanLow()
    {
        int low = Samples(11, 200, temperature: 0.3f).Distinct().Count();
        int high = Samples(11, 200, temperature: 2f).Distinct().Count();
        Assert.True(high > low + 20, $"distinct names: {low} at T = 0.3, {high} at T = 2");
    }

    [Fact]
    public void NamesUseOnlyVocabularyCharactersAndAtMostFifty()
    {
        var allowed = TestData.SyllableNames.SelectMany(n => n).ToHashSet();
        foreach (var name in Samples(5, 500, temperature: 5f))
        {
            Assert.All(name, c => Assert.Contains(c, allowed));
            Assert.InRange(name.Length, 0, 51); // one past the longest name: too long, drawn again by SampleMany
        }
    }

    [Fact]
    public void SamplingStopsOnePastTheLongestNameWhenTheBoundaryNeverComes()
    {
        var vocab = new Vocabulary(["ab", "ba"]);
        var model = new Model(vocab.Size, 2, 16, 1, true, new Rng(3, 2));
        model.Bias.Data[Vocabulary.Boundary] = -1000; // the boundary is never chosen
        var rng = new Rng(3, 4);
        for (int i = 0; i < 5; i++)
        {
            var name = Sampling.Sample(model, vocab, rng, new SamplingRules());
            Assert.Equal(51, name.Length);
            Assert.All(name, c => Assert.Contains(c, "ab"));
        }
        // such a name was cut off, not finished: it is never printed, and the run says so
        var e = Assert.Throws<UserError>(() =>
            Sampling.SampleMany(model, vocab, rng, new SamplingRules(), 2, new HashSet<string>()));
        Assert.Contains("found only 0 of 2 names", e.Message);
    }

    [Fact]
    public void EveryCharacterDrawnWithTopKIsAmongTheKMostLikely()
    {
        const int k = 2;
        foreach (var name in Samples(21, 100, temperature: 3f, topK: k))
        {
            var context = new int[M.K];
            var ids = Vocab.Encode(name);
            // every character, then the boundary that ended the name (unless it hit the cap)
            var drawn = ids.Length < 50 ? [.. ids, Vocabulary.Boundary] : ids;
            foreach (int id in drawn)
            {
                var logits = LogitsFor(M, context);
                int better = logits.Count(l => l > logits[id]);
                Assert.True(better < k, $"'{name}': character {id} had {better} more likely ones");
                Array.Copy(context, 1, context, 0, M.K - 1);
                context[^1] = id;
            }
        }
    }

    [Fact]
    public void TopKAtLeastTheVocabularyIsNoRestriction()
    {
        Assert.Equal(Samples(3, 30), Samples(3, 30, topK: M.V));
        Assert.Equal(Samples(3, 30), Samples(3, 30, topK: 100_000));
    }

    [Theory]
    [InlineData(1f, null)]
    [InlineData(2.5f, null)]
    [InlineData(0.7f, 3)]
    public void FirstCharacterFollowsTheTemperedSoftmax(float temperature, int? topK)
    {
        // An untrained model (flatter), 6 symbols; the first character of each sample (or the
        // boundary, for an empty name) is drawn from softmax(logits / T) over the top K.
        var (model, _) = GradientCheckTests.SmallModel(true, batch: 1, seed: 12);
        var vocab = new Vocabulary(GradientCheckTests.ModelNames);
        var logits = LogitsFor(model, [0, 0, 0]);
        var kept = Enumerable.Range(0, model.V).OrderByDescending(v => logits[v]).Take(topK ?? model.V).ToHashSet();
        var weights = Enumerable.Range(0, model.V).Select(v => kept.Contains(v) ? Math.Exp(logits[v] / temperature) : 0).ToArray();
        var p = weights.Select(w => w / weights.Sum()).ToArray();

        const int N = 20_000;
        var counts = new int[model.V];
        var rng = new Rng(17, 4);
        for (int i = 0; i < N; i++)
        {
            var name = Sampling.Sample(model, vocab, rng, new SamplingRules(temperature, topK));
            counts[name.Length == 0 ? Vocabulary.Boundary : vocab.Encode(name[..1])[0]]++;
        }

        for (int v = 0; v < model.V; v++)
        {
            double freq = (double)counts[v] / N, sigma = Math.Sqrt(p[v] * (1 - p[v]) / N);
            Assert.True(Math.Abs(freq - p[v]) <= 5 * sigma + 1e-9, $"symbol {v}: frequency {freq:F4}, probability {p[v]:F4} (T = {temperature}, top-k {topK})");
        }
    }
}
