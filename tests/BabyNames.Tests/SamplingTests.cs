using System.Globalization;
using System.Text.RegularExpressions;

namespace BabyNames.Tests;

/// <summary>An MLP trained briefly on the syllable names, shared by the sampling tests (which run
/// one after another: sampling uses the model's step buffers).</summary>
public sealed class SyllableModel
{
    internal Corpus Corpus { get; }
    internal Model Model { get; }

    public SyllableModel()
    {
        Corpus = Corpus.Split([.. TestData.SyllableNames], new Rng(1, 1));
        Model = new Model(ModelKind.Mlp, Corpus.Vocab.Size, 4, 16, 32, true, 32, new Rng(1, 2));
        Trainer.Train(Model, new Examples(Corpus.Train, Corpus.Vocab, 4), new Examples(Corpus.Validation, Corpus.Vocab, 4),
            new TrainOptions(0.5f, Steps: 300), new Rng(1, 3));
    }
}

/// <summary>Drawing names from a model: Sampling.Sample and SampleMany.</summary>
public class SamplingTests(SyllableModel trained) : IClassFixture<SyllableModel>
{
    Model M => trained.Model;
    Vocabulary Vocab => trained.Corpus.Vocab;

    List<string> Samples(long seed, int count, float temperature = 1, int? topK = null)
    {
        var rng = new Rng(seed, 4);
        return [.. Enumerable.Range(0, count).Select(_ => Sampling.Sample(M, Vocab, rng, new SamplingRules(temperature, topK)))];
    }

    /// <summary>Greedy decoding written out in the test from the reference probabilities: always
    /// the most likely next letter. Also gives the smallest gap between the best and second-best
    /// log-probability on the way.</summary>
    (string Name, double SmallestGap) Greedy()
    {
        var context = new int[M.K];
        var ids = new List<int>();
        double smallestGap = double.PositiveInfinity;
        while (ids.Count < 50)
        {
            var logProbs = Reference.LogProbs(M, context);
            var order = Enumerable.Range(0, M.V).OrderByDescending(v => logProbs[v]).ToArray();
            smallestGap = Math.Min(smallestGap, logProbs[order[0]] - logProbs[order[1]]);
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
        Assert.Equal(a, Samples(7, 30));
        Assert.NotEqual(a, Samples(8, 30));
    }

    [Fact]
    public void TopKOneIsGreedyWhateverTheSeed()
    {
        var (greedy, gap) = Greedy();
        Assert.NotEqual("", greedy);
        Assert.True(gap > 1e-3, $"the trained model has a near tie ({gap}): float and double may rank it differently");
        foreach (long seed in new long[] { 1, 2, 3, 99, -5 })
            Assert.All(Samples(seed, 10, temperature: 1, topK: 1), name => Assert.Equal(greedy, name));
        // even at a wild temperature
        Assert.All(Samples(4, 10, temperature: 50, topK: 1), name => Assert.Equal(greedy, name));
    }

    [Fact]
    public void VeryLowTemperatureBehavesLikeGreedy()
    {
        var (greedy, gap) = Greedy();
        // at T = 0.001 the runner-up's weight is at most e^(−gap/0.001): with a gap of 0.02, e^-20
        Assert.True(gap > 0.02, $"the trained model has a near tie ({gap}); train it with another seed");
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
    public void NamesUseOnlyVocabularyLettersAndStopOnePastFifty()
    {
        var allowed = TestData.SyllableNames.SelectMany(n => n).ToHashSet();
        var names = Samples(5, 500, temperature: 5f);
        foreach (var name in names)
        {
            Assert.All(name, c => Assert.Contains(c, allowed));
            Assert.InRange(name.Length, 0, 51); // one past the longest name: too long, drawn again by SampleMany
        }
        Assert.Contains(names, n => n.Length > 10); // at T = 5 the names do run long
    }

    [Fact]
    public void ThePrefixStartsEveryName()
    {
        var rng = new Rng(3, 4);
        var rules = new SamplingRules(Prefix: "ki");
        var names = Enumerable.Range(0, 50).Select(_ => Sampling.Sample(M, Vocab, rng, rules)).ToList();
        Assert.All(names, n => Assert.StartsWith("ki", n, StringComparison.Ordinal));
        Assert.Contains(names, n => n.Length > 2);
    }

    [Fact]
    public void SamplingStopsOnePastTheLongestNameWhenTheBoundaryNeverComes()
    {
        var vocab = new Vocabulary(["ab", "ba"]);
        var model = new Model(ModelKind.Bag, vocab.Size, 2, 16, 0, true, 1, new Rng(3, 2));
        model.OutputBias.Data[Vocabulary.Boundary] = -1000; // the boundary is never chosen
        var rng = new Rng(3, 4);
        for (int i = 0; i < 5; i++)
        {
            var name = Sampling.Sample(model, vocab, rng, new SamplingRules());
            Assert.Equal(51, name.Length);
            Assert.All(name, c => Assert.Contains(c, "ab"));
        }
        // such a name was cut off, not finished: it is never printed, and the run says why
        var samples = Sampling.SampleMany(model, vocab, rng, new SamplingRules(), 2, new HashSet<string>());
        Assert.Empty(samples.Names);
        Assert.NotNull(samples.Failure);
        Assert.Contains("found only 0 of 2 names", samples.Failure);
        Assert.Contains("50 letters", samples.Failure);
        Assert.DoesNotContain("loosen", samples.Failure); // no rule was given to loosen
    }

    [Fact]
    public void ANameCutOffAtMaxLengthIsNeverKept()
    {
        var vocab = new Vocabulary(["ab", "ba"]);
        var model = new Model(ModelKind.Bag, vocab.Size, 2, 16, 0, true, 1, new Rng(3, 2));
        model.OutputBias.Data[Vocabulary.Boundary] = -1000;
        var rules = new SamplingRules(MaxLength: 3);
        // a draw stops one letter past the bound: enough to know the name is too long
        Assert.Equal(4, Sampling.Sample(model, vocab, new Rng(1, 4), rules).Length);
        var samples = Sampling.SampleMany(model, vocab, new Rng(1, 4), rules, 3, new HashSet<string>());
        Assert.Empty(samples.Names);
        Assert.Contains("loosen --max-length", samples.Failure);
    }

    [Fact]
    public void SampleManyKeepsTheRulesAndMarksTrainingNames()
    {
        var training = trained.Corpus.Train.ToHashSet();
        var rules = new SamplingRules(Prefix: "b", MinLength: 4, MaxLength: 6, Unique: true);
        var samples = Sampling.SampleMany(M, Vocab, new Rng(2, 4), rules, 15, training);
        Assert.Null(samples.Failure);
        Assert.Equal(15, samples.Names.Count);
        Assert.Equal(15, samples.Names.Select(s => s.Name).Distinct().Count());
        Assert.All(samples.Names, s =>
        {
            Assert.StartsWith("b", s.Name, StringComparison.Ordinal);
            Assert.InRange(s.Name.Length, 4, 6);
            Assert.Equal(training.Contains(s.Name), s.InTraining);
        });
        Assert.Contains(samples.Names, s => s.InTraining);
        var fresh = Sampling.SampleMany(M, Vocab, new Rng(2, 4), rules with { NewOnly = true }, 10, training);
        Assert.Equal(10, fresh.Names.Count);
        Assert.All(fresh.Names, s => Assert.False(training.Contains(s.Name), s.Name));
    }

    [Fact]
    public void EveryLetterDrawnWithTopKIsAmongTheKMostLikely()
    {
        const int k = 2;
        foreach (var name in Samples(21, 100, temperature: 3f, topK: k))
        {
            var context = new int[M.K];
            var ids = Vocab.Encode(name);
            // every letter, then the boundary that ended the name (unless it was cut off)
            int[] drawn = ids.Length <= 50 ? [.. ids, Vocabulary.Boundary] : ids;
            foreach (int id in drawn)
            {
                var logProbs = Reference.LogProbs(M, context);
                int better = logProbs.Count(l => l > logProbs[id] + 1e-5);
                Assert.True(better < k, $"'{name}': letter {id} had {better} more likely ones");
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
    public void FirstLetterFollowsTheTemperedSoftmax(float temperature, int? topK)
    {
        // An untrained bag (flatter), 6 symbols; the first letter of each sample (or the boundary,
        // for an empty name) is drawn from softmax(log p / T) over the top K, log p from the
        // reference. MaxLength 1 stops each draw after two letters.
        var names = new[] { "abc", "bcd", "cde", "dea", "eab" };
        var vocab = new Vocabulary(names);
        var model = new Model(ModelKind.Bag, vocab.Size, 3, 8, 0, true, 1, new Rng(12, 2));
        var logProbs = Reference.LogProbs(model, [0, 0, 0]);
        var kept = Enumerable.Range(0, model.V).OrderByDescending(v => logProbs[v]).Take(topK ?? model.V).ToHashSet();
        var weights = Enumerable.Range(0, model.V).Select(v => kept.Contains(v) ? Math.Exp(logProbs[v] / temperature) : 0).ToArray();
        var p = weights.Select(w => w / weights.Sum()).ToArray();
        Assert.True(p.Count(x => x > 0.05) >= 3, "the first letter is nearly certain: the check would show little");

        const int N = 20_000;
        var counts = new int[model.V];
        var rng = new Rng(17, 4);
        var rules = new SamplingRules(temperature, topK, MaxLength: 1);
        for (int i = 0; i < N; i++)
        {
            var name = Sampling.Sample(model, vocab, rng, rules);
            counts[name.Length == 0 ? Vocabulary.Boundary : vocab.Encode(name[..1])[0]]++;
        }
        for (int v = 0; v < model.V; v++)
        {
            double frequency = (double)counts[v] / N, sigma = Math.Sqrt(p[v] * (1 - p[v]) / N);
            Assert.True(Math.Abs(frequency - p[v]) <= 5 * sigma + 1e-9,
                $"symbol {v}: frequency {frequency:F4}, probability {p[v]:F4} (T = {temperature}, top-k {topK})");
        }
    }

    [Fact]
    public void PossibleCountsTheNamesTheRulesAllow()
    {
        // over 3 letters: lengths 1 and 2 give 3 + 9 names; with prefix "a", lengths 1 and 2 give
        // 1 + 3; the training names that fit are taken out with --new-only
        Assert.Equal(12, new SamplingRules(MaxLength: 2).Possible(3, []));
        Assert.Equal(9, new SamplingRules(MinLength: 2, MaxLength: 2).Possible(3, []));
        Assert.Equal(4, new SamplingRules(Prefix: "a", MaxLength: 2).Possible(3, []));
        Assert.Equal(10, new SamplingRules(MaxLength: 2, NewOnly: true).Possible(3, ["ab", "c", "abc"]));
        Assert.Equal(long.MaxValue, new SamplingRules().Possible(30, []));
    }
}

/// <summary>The sampling rules (--prefix, --min-length, --max-length, --unique, --new-only) on
/// the program's real output.</summary>
public class SamplingRuleTests
{
    static List<(string Name, bool InTraining)> JsonSamples(params string[] args)
    {
        var r = Cli.Run(args);
        r.AssertSuccess();
        return Output.JsonSamples(r.Json());
    }

    static List<string> JsonNames(params string[] args) => [.. JsonSamples(args).Select(s => s.Name)];

    static int Length(string name) => name.EnumerateRunes().Count();

    [Fact]
    public void EverySampleStartsWithThePrefix()
    {
        var names = JsonNames("--steps", "50", "--samples", "40", "--prefix", "ma", "--json");
        Assert.Equal(40, names.Count);
        Assert.All(names, n => Assert.StartsWith("ma", n, StringComparison.Ordinal));
        Assert.Contains(names, n => n.Length > 2); // the model does add letters after the prefix

        var text = Cli.Run("--steps", "50", "--samples", "10", "--prefix", "ma");
        text.AssertSuccess();
        var samples = Output.TextSamples(text.Out);
        Assert.Equal(10, samples.Count);
        Assert.All(samples, s => Assert.StartsWith("ma", s.Name, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("MA", "ma")]
    [InlineData(" Ma ", "ma")]
    [InlineData("\u00D6", "\u00F6")]   // Ö → ö
    [InlineData("o\u0308", "\u00F6")]  // o + combining diaeresis → ö (NFC, as the names are)
    public void PrefixIsNormalizedAsTheNamesAre(string given, string expected)
    {
        string[] args = ["--steps", "40", "--samples", "15", "--seed", "3", "--json"];
        var asGiven = Cli.Run([.. args, "--prefix", given]).Json();
        var canonical = Cli.Run([.. args, "--prefix", expected]).Json();
        Assert.Equal(expected, asGiven.GetProperty("options").GetProperty("prefix").GetString());
        var names = Output.JsonSamples(asGiven);
        Assert.All(names, s => Assert.StartsWith(expected, s.Name, StringComparison.Ordinal));
        Assert.Equal(Output.JsonSamples(canonical), names);
    }

    [Theory]
    [InlineData("#")]
    [InlineData("ma7")]
    [InlineData("m\u200Ba")]
    [InlineData("\U0001F600")]
    public void PrefixWithALetterNoNameHasFailsBeforeTraining(string prefix)
    {
        Assert.Contains("--prefix", InProcess.FailsBeforeTraining(2, "--steps", "5", "--samples", "3", "--prefix", prefix));
        Cli.Run("--steps", "5", "--samples", "3", "--prefix", prefix, "--json").AssertOneError(2);
    }

    [Fact]
    public void PrefixIsCheckedAgainstTheNamesFileInUse()
    {
        // 'z' is in the bundled names but not in the syllable names
        using var file = new TempFile(TestData.SyllableNamesFile);
        Assert.All(JsonNames("--steps", "5", "--samples", "2", "--prefix", "z", "--json"), n => Assert.StartsWith("z", n));
        Assert.Contains("--prefix", InProcess.FailsBeforeTraining(2, "--names", file.Path, "--steps", "5", "--samples", "2", "--prefix", "z"));
    }

    [Theory]
    [InlineData(4, 6)]
    [InlineData(1, 3)]
    [InlineData(8, 50)]
    [InlineData(5, 5)]
    public void SampleLengthsAreWithinTheBounds(int min, int max)
    {
        var names = JsonNames("--steps", "60", "--samples", "50", "--seed", "4", "--json",
            "--min-length", min.ToString(CultureInfo.InvariantCulture), "--max-length", max.ToString(CultureInfo.InvariantCulture));
        Assert.Equal(50, names.Count);
        Assert.All(names, n => Assert.InRange(Length(n), min, max));
    }

    [Fact]
    public void LengthsAreCountedInCodePoints()
    {
        using var file = new TempFile(ReportTests.ClefNames);
        var names = JsonNames("--names", file.Path, "--steps", "200", "--samples", "60", "--seed", "2",
            "--min-length", "4", "--max-length", "4", "--json");
        Assert.Equal(60, names.Count);
        Assert.All(names, n => Assert.Equal(4, Length(n)));
        // the check is not vacuous: some of them are 5 UTF-16 units long, and were kept
        Assert.Contains(names, n => n.Length == 5);

        // a prefix of 2 code points (3 UTF-16 units) fits --max-length 2, and then is the whole name
        var exact = JsonNames("--names", file.Path, "--steps", "20", "--samples", "5", "--prefix", "\U0001D11Eo", "--max-length", "2", "--json");
        Assert.Equal(5, exact.Count);
        Assert.All(exact, n => Assert.Equal("\U0001D11Eo", n));
    }

    [Fact]
    public void MinLengthAboveMaxLengthFailsBeforeTraining()
    {
        var line = InProcess.FailsBeforeTraining(2, "--steps", "5", "--min-length", "7", "--max-length", "6");
        Assert.Contains("--min-length", line);
        Assert.Contains("--max-length", line);
        // equal bounds are fine
        Assert.Equal(2, JsonNames("--steps", "5", "--samples", "2", "--min-length", "6", "--max-length", "6", "--json").Count);
    }

    [Fact]
    public void PrefixLongerThanMaxLengthFailsBeforeTraining()
    {
        var line = InProcess.FailsBeforeTraining(2, "--seconds", "3600", "--prefix", "mar", "--max-length", "2");
        Assert.Contains("--prefix", line);
        Assert.Contains("--max-length", line);
    }

    [Fact]
    public void UniqueWithMoreNamesThanTheRulesAllowFailsBeforeTraining()
    {
        // two letters and at most 2 of them: a, b, aa, ab, ba, bb
        using var file = new TempFile("ab\nba\nabba\nbaab\naab\n");
        var line = InProcess.FailsBeforeTraining(2, "--names", file.Path, "--seconds", "3600", "--unique", "--samples", "100", "--max-length", "2");
        Assert.Contains("--unique", line);
        Assert.Contains("--max-length", line);
        Assert.Contains("at most 6", line);
        Assert.DoesNotContain("--min-length", line); // not given
        Assert.DoesNotContain("--prefix", line);
        // with --load as well: the saved model's letters decide
        using var dir = new TempDir();
        var model = dir.File("model.bin");
        Cli.Run("--names", file.Path, "--steps", "1", "--samples", "0", "--save", model).AssertSuccess();
        Assert.Contains("at most 2", InProcess.FailsBeforeTraining(2, "--load", model, "--unique", "--samples", "3", "--max-length", "1"));
    }

    [Fact]
    public void UniqueWithAsManyNamesAsTheRulesAllowFindsThemAll()
    {
        // one small step leaves the model nearly uniform: both one-letter names turn up
        using var file = new TempFile("ab\nba\nabba\nbaab\naab\n");
        Assert.Equal(["a", "b"], JsonNames("--names", file.Path, "--steps", "1", "--lr", "0.001", "--unique", "--samples", "2", "--max-length", "1", "--json").Order());
    }

    [Fact]
    public void WhenSamplingGivesUpTheNamesFoundArePrintedThenTheError()
    {
        // at T = 0.001 every draw is the most likely name: one name, then only repeats
        using var file = new TempFile(TestData.SyllableNamesFile);
        string[] args = ["--names", file.Path, "--steps", "200", "--temperature", "0.001", "--unique", "--samples", "5"];
        var r = Cli.Run(args);
        Assert.Equal(1, r.Code);
        var samples = Output.TextSamples(r.Out);
        Assert.Single(samples);
        var line = r.AssertErrorLine();
        Assert.Matches(@"^error: found only 1 of 5 names that keep the rules in [\d,]+ tries; loosen --unique$", line);
        Assert.StartsWith("Validation loss: ", r.OutLines[^1]); // the whole report, then the error

        var json = Cli.Run([.. args, "--json"]);
        Assert.Equal(1, json.Code);
        Assert.Equal(line, json.AssertErrorLine());
        using var doc = System.Text.Json.JsonDocument.Parse(json.Out);
        Assert.Equal(samples, Output.JsonSamples(doc.RootElement));
        Assert.Equal(line["error: ".Length..], doc.RootElement.GetProperty("error").GetString());
    }

    [Fact]
    public void TheErrorNamesOnlyTheRulesGiven()
    {
        using var file = new TempFile(TestData.SyllableNamesFile);
        var r = Cli.Run("--names", file.Path, "--steps", "200", "--temperature", "0.001", "--unique", "--prefix", "ba", "--samples", "5");
        Assert.Equal(1, r.Code);
        Assert.EndsWith("; loosen --prefix, --unique", r.AssertErrorLine());
    }

    [Fact]
    public void AnImpossibleMinimumGivesUpQuickly()
    {
        // no name of the model reaches 50 letters: it gives up after a bounded number of draws,
        // not after drawing a hundred for each of 100,000 names
        var (r, trained) = InProcess.Watched("--steps", "20", "--min-length", "50", "--samples", "100000");
        Assert.True(trained);
        Assert.Equal(1, r.Code);
        Assert.DoesNotContain("Samples:", r.OutLines);
        var line = r.AssertErrorLine();
        var m = Regex.Match(line, @"^error: found only 0 of 100000 names that keep the rules in ([\d,]+) tries; loosen --min-length$");
        Assert.True(m.Success, line);
        Assert.True(long.Parse(m.Groups[1].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture) <= 10_000, line);
    }

    [Fact]
    public void MaxLengthDoesNotCutNamesOff()
    {
        // The model learns names of three syllables, six letters each: unbounded, its names are
        // such names. With --max-length 3 it never ends a name after three letters, so sampling
        // gives up; a longer name cut down to 3 letters must never be printed instead.
        string[] syllables = ["ba", "de", "ki", "lo", "mu", "na"];
        var sixes = (from a in syllables from b in syllables from c in syllables select a + b + c).ToList();
        using var file = new TempFile(sixes);
        string[] args = ["--names", file.Path, "--steps", "300", "--batch-size", "64", "--temperature", "0.5", "--samples", "20", "--seed", "1"];
        var free = JsonNames([.. args, "--json"]);
        Assert.True(free.Count(sixes.Contains) >= 18, string.Join(", ", free));

        var r = Cli.Run([.. args, "--max-length", "3", "--json"]);
        Assert.Equal(1, r.Code);
        Assert.Matches(@"^error: found only 0 of 20 names .*; loosen --max-length$", r.AssertErrorLine());
        using var doc = System.Text.Json.JsonDocument.Parse(r.Out);
        Assert.Empty(Output.JsonSamples(doc.RootElement)); // no "ban", "kik", ...
    }

    [Fact]
    public void UniqueNeverRepeatsAName()
    {
        using var file = new TempFile(TestData.SyllableNamesFile);
        string[] args = ["--names", file.Path, "--steps", "200", "--samples", "200", "--seed", "6", "--json"];
        var unique = JsonNames([.. args, "--unique"]);
        Assert.Equal(200, unique.Count);
        Assert.Equal(200, unique.Distinct().Count());
        // without the flag, the same run repeats names: the flag is what prevents it
        Assert.True(JsonNames(args).Distinct().Count() < 200, "200 samples without --unique had no repeat");
    }

    [Fact]
    public void NewOnlyLeavesOutTrainingNames()
    {
        // forty real names, learned by heart in 300 steps
        using var dir = new TempDir();
        var names = dir.File("names.txt");
        var model = dir.File("model.bin");
        File.WriteAllText(names, string.Join("\n", TestData.TinyNames) + "\n");
        string[] args = ["--names", names, "--steps", "300", "--context", "3", "--samples", "30", "--seed", "3", "--json", "--save", model];

        var all = Cli.Run(args);
        Assert.Equal(0, all.Code);
        var samples = Output.JsonSamples(all.Json());
        var training = ModelFile.Load(model).TrainingNames;
        Assert.Equal(36, training.Count); // 90% of 40
        Assert.Subset(TestData.TinyNames.ToHashSet(), training.ToHashSet());
        Assert.All(samples, s => Assert.Equal(training.Contains(s.Name), s.InTraining));
        Assert.Contains(samples, s => s.InTraining); // so --new-only has something to leave out

        var fresh = Cli.Run([.. args, "--new-only"]);
        Assert.Equal(0, fresh.Code);
        var freshSamples = Output.JsonSamples(fresh.Json());
        Assert.Equal(30, freshSamples.Count);
        Assert.All(freshSamples, s =>
        {
            Assert.False(s.InTraining, s.Name);
            Assert.DoesNotContain(s.Name, training);
        });
        // text mode: no sample line is marked
        var text = Cli.Run([.. args.Where(a => a != "--json"), "--new-only"]);
        Assert.Equal(0, text.Code);
        var textSamples = Output.TextSamples(text.Out);
        Assert.Equal(30, textSamples.Count);
        Assert.All(textSamples, s => Assert.False(s.InTraining, s.Name));
    }

    [Fact]
    public void RulesCombine()
    {
        using var file = new TempFile(TestData.SyllableNamesFile);
        var r = Cli.Run("--names", file.Path, "--steps", "200", "--samples", "20", "--prefix", "Ba",
            "--min-length", "4", "--max-length", "6", "--unique", "--new-only", "--json");
        r.AssertSuccess();
        var json = r.Json();
        var samples = Output.JsonSamples(json);
        Assert.Equal(20, samples.Count);
        Assert.Equal(20, samples.Select(s => s.Name).Distinct().Count());
        Assert.All(samples, s =>
        {
            Assert.StartsWith("ba", s.Name, StringComparison.Ordinal);
            Assert.InRange(Length(s.Name), 4, 6);
            Assert.False(s.InTraining);
        });
        var o = json.GetProperty("options");
        Assert.Equal("ba", o.GetProperty("prefix").GetString());
        Assert.Equal(4, o.GetProperty("min_length").GetInt32());
        Assert.Equal(6, o.GetProperty("max_length").GetInt32());
        Assert.True(o.GetProperty("unique").GetBoolean());
        Assert.True(o.GetProperty("new_only").GetBoolean());
    }
}
