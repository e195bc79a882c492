using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace BabyNames.Tests;

/// <summary>Two models, an MLP and a bag, trained on the syllable names and saved, for the
/// scoring tests; and the saved models loaded, for the reference.</summary>
public sealed class ScoredModels : IDisposable
{
    readonly TempDir dir = new();
    public string NamesPath { get; }
    public string MlpPath { get; }
    public string BagPath { get; }
    internal Trained Mlp { get; }
    internal Trained Bag { get; }

    public ScoredModels()
    {
        NamesPath = dir.File("names.txt");
        File.WriteAllText(NamesPath, TestData.SyllableNamesFile);
        MlpPath = dir.File("mlp.bin");
        BagPath = dir.File("bag.bin");
        Cli.Run("--names", NamesPath, "--steps", "300", "--batch-size", "32", "--context", "4", "--dim", "8", "--hidden", "24",
            "--samples", "0", "--save", MlpPath).AssertSuccess();
        Cli.Run("--names", NamesPath, "--steps", "300", "--batch-size", "32", "--context", "3", "--dim", "8", "--model", "bag",
            "--samples", "0", "--save", BagPath).AssertSuccess();
        Mlp = ModelFile.Load(MlpPath);
        Bag = ModelFile.Load(BagPath);
    }

    public void Dispose() => dir.Dispose();
}

/// <summary>--score and --score-file: how surprising each letter of a name is to the model.</summary>
public class ScoringTests(ScoredModels models) : IClassFixture<ScoredModels>
{
    /// <summary>A name's surprise from the model's probabilities, in double, written out here: for
    /// each letter and then the end, −log2 p(letter | the K letters before it, the boundary
    /// standing in before the name's start).</summary>
    static double[] ReferenceBits(Trained t, string name)
    {
        var m = t.Model;
        var context = new int[m.K]; // all boundary
        var targets = name.EnumerateRunes().Select(r => t.Vocab.Encode(r.ToString())[0]).Append(Vocabulary.Boundary).ToList();
        var bits = new double[targets.Count];
        for (int i = 0; i < targets.Count; i++)
        {
            bits[i] = -Reference.LogProbs(m, context)[targets[i]] / Math.Log(2);
            Array.Copy(context, 1, context, 0, m.K - 1);
            context[^1] = targets[i];
        }
        return bits;
    }

    static JsonElement[] Scores(JsonElement json) => [.. json.GetProperty("scores").EnumerateArray()];

    /// <summary>A run that scores names and succeeds; its JSON.</summary>
    static JsonElement ScoreJson(params string[] args)
    {
        var r = Cli.Run([.. args, "--json"]);
        r.AssertSuccess();
        return r.Json();
    }

    static JsonElement ParseOut(CliResult r)
    {
        using var doc = JsonDocument.Parse(r.Out);
        return doc.RootElement.Clone();
    }

    // a training name, and a name of the syllables that is not in the data at all
    string TrainingName => models.Mlp.TrainingNames.Order(StringComparer.Ordinal).First();

    [Theory]
    [InlineData("mlp")]
    [InlineData("bag")]
    public void BitsAreTheSumOfTheLettersAndMatchTheModelsProbabilities(string kind)
    {
        var (path, trained) = kind == "mlp" ? (models.MlpPath, models.Mlp) : (models.BagPath, models.Bag);
        string[] names = [TrainingName, "kisamu", "vovovo", "a", "tebalonari"];
        var json = ScoreJson(["--load", path, "--score", .. names]);
        var rows = Scores(json);
        Assert.Equal(names.Length, rows.Length);
        for (int i = 0; i < names.Length; i++)
        {
            var row = rows[i];
            Assert.Equal(names[i], row.GetProperty("name").GetString());
            Assert.Equal(JsonValueKind.Null, row.GetProperty("error").ValueKind);
            var letters = row.GetProperty("letters").EnumerateArray().ToList();
            // each letter, then the end of the name as '.'
            Assert.Equal([.. names[i].Select(c => c.ToString()), "."], letters.Select(l => l.GetProperty("letter").GetString()!));
            var expected = ReferenceBits(trained, names[i]);
            for (int j = 0; j < letters.Count; j++)
                Assert.Equal(expected[j], letters[j].GetProperty("bits").GetDouble(), 1e-3);
            double bits = row.GetProperty("bits").GetDouble();
            Assert.Equal(letters.Sum(l => l.GetProperty("bits").GetDouble()), bits, 1e-3); // rounded to 4 places each
            Assert.Equal(expected.Sum(), bits, 1e-3);
            Assert.Equal(bits / letters.Count, row.GetProperty("bits_per_letter").GetDouble(), 1e-3);
        }
    }

    [Fact]
    public void ScoringMatchesTheReferenceToFloatPrecision()
    {
        // straight from Scoring.Score, unrounded; more names than a shard holds
        var t = models.Mlp;
        var names = TestData.SyllableNames.Take(40).Append("vovokiba").ToList();
        var scores = Scoring.Score(t.Model, t.Vocab, t.TrainingNames, names);
        Assert.Equal(names.Count, scores.Count);
        for (int i = 0; i < names.Count; i++)
        {
            var expected = ReferenceBits(t, names[i]);
            Assert.Null(scores[i].Error);
            Assert.Equal(names[i], scores[i].Name);
            Assert.Equal(expected.Length, scores[i].LetterBits.Count);
            Assert.Equal([.. t.Vocab.Encode(names[i]).Select(c => (byte)c), (byte)Vocabulary.Boundary], scores[i].Letters);
            for (int j = 0; j < expected.Length; j++)
                Assert.True(Math.Abs(expected[j] - scores[i].LetterBits[j]) <= 1e-4 * Math.Max(1, expected[j]),
                    $"{names[i]} letter {j}: {scores[i].LetterBits[j]} vs {expected[j]}");
            Assert.Equal(scores[i].LetterBits.Sum(), scores[i].Bits, 1e-9);
            Assert.Equal(t.TrainingNames.Contains(names[i]), scores[i].InTraining);
        }
    }

    [Fact]
    public void ARealNameScoresLowerThanAKeyboardMash()
    {
        // a model trained on the bundled names
        var json = ScoreJson("--steps", "300", "--score", "maria", "qxzjkw");
        var rows = Scores(json);
        double real = rows[0].GetProperty("bits").GetDouble(), mash = rows[1].GetProperty("bits").GetDouble();
        Assert.True(real < mash, $"maria {real:F1} bits, qxzjkw {mash:F1} bits");
        Assert.True(rows[0].GetProperty("bits_per_letter").GetDouble() < rows[1].GetProperty("bits_per_letter").GetDouble());
        Assert.Contains("maria", TextReport.BundledNames());
        Assert.False(rows[1].GetProperty("in_training").GetBoolean());
    }

    [Fact]
    public void InTrainingTellsTrainingNamesFromOthers()
    {
        var validation = TestData.SyllableNames.First(n => !models.Mlp.TrainingNames.Contains(n)); // held out
        var rows = Scores(ScoreJson("--load", models.MlpPath, "--score", TrainingName, validation, "vovovo"));
        Assert.True(rows[0].GetProperty("in_training").GetBoolean());
        Assert.False(rows[1].GetProperty("in_training").GetBoolean());
        Assert.False(rows[2].GetProperty("in_training").GetBoolean());
    }

    [Fact]
    public void JsonScoresHaveTheirFieldsInOrder()
    {
        var json = ScoreJson("--load", models.MlpPath, "--score", "kisa");
        var row = Assert.Single(Scores(json));
        Assert.Equal(["name", "bits", "bits_per_letter", "in_training", "letters", "error"], row.EnumerateObject().Select(p => p.Name));
        Assert.All(row.GetProperty("letters").EnumerateArray(), l => Assert.Equal(["letter", "bits"], l.EnumerateObject().Select(p => p.Name)));
        // scoring replaces sampling
        Assert.Empty(Output.JsonSamples(json));
    }

    [Fact]
    public void NamesAreScoredInInputOrderUnlessSorted()
    {
        string[] names = ["vovovo", "kisa", "ba", "mulodeva", "kisa", "titi"];
        var plain = Scores(ScoreJson(["--load", models.MlpPath, "--score", .. names]));
        Assert.Equal(names, plain.Select(r => r.GetProperty("name").GetString()));

        var sorted = Scores(ScoreJson(["--load", models.MlpPath, "--score", .. names, "--sort"]));
        Assert.Equal(names.Order(StringComparer.Ordinal), sorted.Select(r => r.GetProperty("name").GetString()!).Order(StringComparer.Ordinal));
        // from the most name-like to the least: bits per letter, so that lengths compare
        var perLetter = sorted.Select(r => r.GetProperty("bits_per_letter").GetDouble()).ToList();
        Assert.Equal(perLetter.Order(), perLetter);
        Assert.NotEqual(plain.Select(r => r.GetProperty("name").GetString()), sorted.Select(r => r.GetProperty("name").GetString()));
    }

    [Fact]
    public void SortPutsNamesThatCannotBeScoredLast()
    {
        var r = Cli.Run("--load", models.MlpPath, "--score", "zzz", "vovovo", "kisa", "--sort", "--json");
        Assert.Equal(1, r.Code);
        var names = Scores(ParseOut(r)).Select(x => x.GetProperty("name").GetString()).ToList();
        Assert.Equal("zzz", names[^1]);
    }

    [Fact]
    public void ALetterTheModelNeverSawGetsItsOwnRowAndTheOthersAreScored()
    {
        var r = Cli.Run("--load", models.MlpPath, "--score", "kisa", "kiza", "vovo", "--json");
        Assert.Equal(1, r.Code);
        Assert.Equal("error: 1 of 3 names could not be scored", r.AssertErrorLine());
        var json = ParseOut(r);
        var rows = Scores(json);
        Assert.Equal(["kisa", "kiza", "vovo"], rows.Select(x => x.GetProperty("name").GetString()));
        var bad = rows[1];
        Assert.Contains("'z'", bad.GetProperty("error").GetString());
        Assert.Equal(JsonValueKind.Null, bad.GetProperty("bits").ValueKind);
        Assert.Equal(JsonValueKind.Null, bad.GetProperty("bits_per_letter").ValueKind);
        Assert.Empty(bad.GetProperty("letters").EnumerateArray());
        foreach (var good in new[] { rows[0], rows[2] })
        {
            Assert.Equal(JsonValueKind.Null, good.GetProperty("error").ValueKind);
            Assert.Equal(ReferenceBits(models.Mlp, good.GetProperty("name").GetString()!).Sum(), good.GetProperty("bits").GetDouble(), 1e-3);
        }
        Assert.Equal("1 of 3 names could not be scored", json.GetProperty("error").GetString());

        var text = Cli.Run("--load", models.MlpPath, "--score", "kisa", "kiza", "vovo");
        Assert.Equal(1, text.Code);
        text.AssertErrorLine();
        var row = Assert.Single(text.OutLines, l => l.TrimStart().StartsWith("kiza"));
        Assert.Matches(@"^  kiza\s+cannot be scored: 'z' is a letter the model never saw$", row);
    }

    [Fact]
    public void ANameLongerThanFiftyLettersGetsItsOwnRow()
    {
        string fifty = string.Concat(Enumerable.Repeat("ki", 25)), fiftyOne = fifty + "s";
        var r = Cli.Run("--load", models.MlpPath, "--score", fifty, fiftyOne, "--json");
        Assert.Equal(1, r.Code);
        var rows = Scores(ParseOut(r));
        Assert.Equal(JsonValueKind.Null, rows[0].GetProperty("error").ValueKind);
        Assert.Equal(51, rows[0].GetProperty("letters").GetArrayLength()); // 50 letters and the end
        Assert.Contains("51", rows[1].GetProperty("error").GetString());
    }

    [Fact]
    public void WhenNoNameCanBeScoredEachHasItsReason()
    {
        var r = Cli.Run("--load", models.MlpPath, "--score", "zz", "x9");
        Assert.Equal(1, r.Code);
        Assert.Equal("error: 2 of 2 names could not be scored", r.AssertErrorLine());
        Assert.Equal(2, r.OutLines.Count(l => l.Contains("cannot be scored: ")));
    }

    [Fact]
    public void NamesAreReadAsTheNamesFileIs()
    {
        // trimmed, lower-cased, in NFC: "KISA" is "kisa"
        using var dir = new TempDir();
        File.WriteAllText(dir.File("names.txt"), TestData.SyllableNamesFile + "Anaïs\n");
        var model = dir.File("m.bin");
        Cli.Run("--names", dir.File("names.txt"), "--steps", "50", "--samples", "0", "--save", model).AssertSuccess();
        var rows = Scores(ScoreJson("--load", model, "--score", "  KISA ", "ANA\u0049\u0308S", "anaïs"));
        Assert.Equal(["kisa", "anaïs", "anaïs"], rows.Select(x => x.GetProperty("name").GetString()));
        Assert.Equal(rows[2].GetProperty("bits").GetDouble(), rows[1].GetProperty("bits").GetDouble());
        Assert.All(rows, x => Assert.Equal(JsonValueKind.Null, x.GetProperty("error").ValueKind));
    }

    [Fact]
    public void ScoreFileHasOneNameALine()
    {
        // a mark, Windows line ends, blank lines, spaces and capitals
        using var file = new TempFile([0xEF, 0xBB, 0xBF, .. TestData.Utf8("Kisa\r\n\r\n  vovo  \r\n\uFEFFba\r\n   \r\n")]);
        var rows = Scores(ScoreJson("--load", models.MlpPath, "--score-file", file.Path));
        Assert.Equal(["kisa", "vovo", "ba"], rows.Select(x => x.GetProperty("name").GetString()));
        Assert.Equal(file.Path, ScoreJson("--load", models.MlpPath, "--score-file", file.Path).GetProperty("options").GetProperty("score_file").GetString());
    }

    [Fact]
    public void NamesAfterScoreComeBeforeTheScoreFilesNames()
    {
        using var file = new TempFile(["deki", "lomu"]);
        var rows = Scores(ScoreJson("--load", models.MlpPath, "--score", "kisa", "ba", "--score-file", file.Path));
        Assert.Equal(["kisa", "ba", "deki", "lomu"], rows.Select(x => x.GetProperty("name").GetString()));
    }

    [Fact]
    public void ScoreFileFromStandardInput()
    {
        var r = App.Run(["--load", models.MlpPath, "--score-file", "-", "--json"], input: "kisa\nVOVO\n\nba\n");
        Assert.Equal("", r.Err);
        var rows = Scores(r.Json());
        Assert.Equal(["kisa", "vovo", "ba"], rows.Select(x => x.GetProperty("name").GetString()));
        Assert.Equal(ReferenceBits(models.Mlp, "vovo").Sum(), rows[1].GetProperty("bits").GetDouble(), 1e-3);
    }

    public static TheoryData<string[]> EmptyLists => new()
    {
        { ["--score", ""] }, { ["--score", "  ", "\t"] }, { ["--score-file", "EMPTY"] }, { ["--score-file", "BLANK"] },
    };

    [Theory]
    [MemberData(nameof(EmptyLists))]
    public void AnEmptyListIsAUsageError(string[] args)
    {
        using var empty = new TempFile("");
        using var blank = new TempFile("\n  \r\n\t\n");
        string[] resolved = [.. args.Select(a => a == "EMPTY" ? empty.Path : a == "BLANK" ? blank.Path : a)];
        Assert.Contains("no names to score", InProcess.FailsBeforeTraining(2, [.. resolved, "--seconds", "3600"]));
        Assert.Contains("no names to score", Cli.Run(["--load", models.MlpPath, .. resolved]).AssertOneError(2));
    }

    [Fact]
    public void AnEmptyStandardInputIsAUsageError() =>
        Assert.Contains("no names to score", App.Run(["--load", models.MlpPath, "--score-file", "-"], input: "").AssertOneError(2));

    [Fact]
    public void NamesAndScoreFileCannotBothReadStandardInput()
    {
        var line = InProcess.FailsBeforeTraining(2, "--names", "-", "--score-file", "-", "--steps", "5");
        Assert.Contains("--names -", line);
        Assert.Contains("--score-file -", line);
        Assert.Contains("standard input", line);
    }

    [Fact]
    public void AMissingScoreFileIsOneLine()
    {
        var path = Path.Combine(Path.GetTempPath(), $"babynames-missing-{Guid.NewGuid():N}.txt");
        Assert.Contains(path, InProcess.FailsBeforeTraining(1, "--score-file", path, "--seconds", "3600"));
    }

    [Fact]
    public void WithLoadNothingIsTrained()
    {
        var before = File.ReadAllBytes(models.MlpPath);
        var r = InProcess.Run(["--load", models.MlpPath, "--score", "kisa", "--json"], training: _ => Assert.Fail("training started"));
        r.AssertSuccess();
        var json = r.Json();
        Assert.Equal(models.Mlp.Steps, json.GetProperty("steps").GetInt64());
        Assert.Equal(0, json.GetProperty("seconds").GetDouble());
        Assert.Equal(JsonValueKind.Null, json.GetProperty("examples").ValueKind);
        Assert.Equal(before, File.ReadAllBytes(models.MlpPath));
    }

    [Fact]
    public void AfterTrainingTheTrainedModelScores()
    {
        // the scores of a run that trains are those of the model it trained, which it saves
        using var dir = new TempDir();
        var model = dir.File("m.bin");
        var (r, trained) = InProcess.Watched("--names", models.NamesPath, "--steps", "100", "--context", "3", "--score", "kisa", "vovo", "--save", model, "--json");
        Assert.True(trained);
        Assert.Equal(0, r.Code);
        Assert.Equal($"Saved model to {model}\n", r.Err.Replace("\r\n", "\n"));
        var rows = Scores(ParseOut(r));
        var saved = ModelFile.Load(model);
        Assert.Equal(100, saved.Steps);
        Assert.Equal(ReferenceBits(saved, "kisa").Sum(), rows[0].GetProperty("bits").GetDouble(), 1e-3);
        Assert.Equal(ReferenceBits(saved, "vovo").Sum(), rows[1].GetProperty("bits").GetDouble(), 1e-3);
    }

    [Fact]
    public void TextMarksTheMostSurprisingLetter()
    {
        string[] names = ["kisamu", "vovovo", "ba"];
        var json = ScoreJson(["--load", models.MlpPath, "--score", .. names]);
        var text = Cli.Run(["--load", models.MlpPath, "--score", .. names]);
        text.AssertSuccess();
        Assert.DoesNotContain("Samples:", text.OutLines); // scoring replaces sampling
        Assert.Contains("Scores (surprise in bits; lower is more name-like):", text.OutLines);
        foreach (var row in Scores(json))
        {
            var name = row.GetProperty("name").GetString()!;
            var line = Assert.Single(text.OutLines, l => l.StartsWith("  " + name + " ", StringComparison.Ordinal));
            var m = Regex.Match(line, @"^  (\S+)\s+(\d+\.\d) bits  (\d+\.\d\d) a letter(  \(in training data\))?  (.*)$");
            Assert.True(m.Success, line);
            Assert.Equal(row.GetProperty("bits").GetDouble(), TextReport.Number(m.Groups[2].Value), 0.05 + 1e-9);
            Assert.Equal(row.GetProperty("bits_per_letter").GetDouble(), TextReport.Number(m.Groups[3].Value), 0.005 + 1e-9);
            Assert.Equal(row.GetProperty("in_training").GetBoolean(), m.Groups[4].Success);
            // every letter with its bits, one of them in brackets: the one with the most
            var letters = row.GetProperty("letters").EnumerateArray().ToList();
            var shown = Regex.Matches(m.Groups[5].Value, @"(\[)?(\S+) (\d+\.\d)\]?").ToList();
            Assert.Equal(letters.Select(l => l.GetProperty("letter").GetString()), shown.Select(s => s.Groups[2].Value));
            int marked = Assert.Single(Enumerable.Range(0, shown.Count), i => shown[i].Groups[1].Success);
            double most = letters.Max(l => l.GetProperty("bits").GetDouble());
            Assert.Equal(most, letters[marked].GetProperty("bits").GetDouble());
        }
    }

    [Fact]
    public void SamplingOptionsDoNotGoWithScoring()
    {
        var line = Cli.Run("--load", models.MlpPath, "--score", "kisa", "--samples", "3").AssertOneError(2);
        Assert.Contains("--samples", line);
        Assert.Contains("--score", line);
    }
}
