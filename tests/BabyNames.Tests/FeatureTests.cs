using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace BabyNames.Tests;

// Tests for the features around the core model: sampling rules (--prefix, --min-length,
// --max-length, --unique, --new-only), model files (--save, --load), the quality figures, progress
// output, and Ctrl+C. Several classes, so that xunit runs them side by side.

/// <summary>Shared helpers: reading the program's output, names files, lengths in code points.</summary>
internal static class Feature
{
    static readonly Regex SampleLine = new(@"^ *(\d+) : (.*?)( \(in training data\))?$");

    public static int Length(string name) => name.EnumerateRunes().Count();

    public static JsonElement Json(CliResult r)
    {
        r.AssertSuccess();
        using var doc = JsonDocument.Parse(r.Out);
        return doc.RootElement.Clone();
    }

    public static List<(string Name, bool InTraining)> JsonSamples(JsonElement json) =>
        json.GetProperty("samples").EnumerateArray()
            .Select(s => (s.GetProperty("name").GetString()!, s.GetProperty("in_training").GetBoolean())).ToList();

    public static List<string> JsonNames(CliResult r) => JsonSamples(Json(r)).Select(s => s.Name).ToList();

    /// <summary>The numbered sample lines of a text report (between "Samples:" and the summary
    /// lines), checked to be numbered 1, 2, 3, ...</summary>
    public static List<(string Name, bool InTraining)> TextSamples(string output)
    {
        var lines = output.Replace("\r\n", "\n").TrimEnd('\n').Split('\n');
        int start = Array.IndexOf(lines, "Samples:");
        Assert.True(start >= 0, $"no 'Samples:' line in:\n{output}");
        var samples = new List<(string, bool)>();
        foreach (var line in lines.Skip(start + 1))
        {
            if (line.StartsWith("New names: ", StringComparison.Ordinal) || line.StartsWith("Validation loss: ", StringComparison.Ordinal)) break;
            var m = SampleLine.Match(line);
            Assert.True(m.Success, $"sample line: '{line}'");
            Assert.Equal(samples.Count + 1, int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
            samples.Add((m.Groups[2].Value, m.Groups[3].Success));
        }
        return samples;
    }

    public static List<(string Name, bool InTraining)> TextSamples(CliResult r)
    {
        r.AssertSuccess();
        return TextSamples(r.Out);
    }

    /// <summary>150 made-up names from ten syllables, one of which has a character outside the
    /// Basic Multilingual Plane (two UTF-16 units, one code point): lengths in code points and in
    /// UTF-16 units differ for about a fifth of them.</summary>
    public static readonly string[] ClefNames = TestData.MakeSyllableNames("\U0001D11Eo");

    public static string File(IEnumerable<string> names) => string.Join("\n", names) + "\n";

    /// <summary>FNV-1a, 64 bits, as the model file format describes its checksum.</summary>
    public static ulong Fnv1a(ReadOnlySpan<byte> bytes)
    {
        ulong hash = 14695981039346656037UL;
        foreach (var b in bytes) hash = (hash ^ b) * 1099511628211UL;
        return hash;
    }

    /// <summary>Recomputes the trailing 8-byte checksum of a model file's bytes in place.</summary>
    public static void Rehash(byte[] bytes) =>
        BitConverter.GetBytes(Fnv1a(bytes.AsSpan(0, bytes.Length - 8))).CopyTo(bytes, bytes.Length - 8);
}

// =================================================================================================
// --prefix, --min-length, --max-length, --unique, --new-only
// =================================================================================================

public class SamplingOptionTests
{
    [Fact]
    public void EverySampleStartsWithThePrefix()
    {
        var names = Feature.JsonNames(Cli.Run("--steps", "50", "--samples", "40", "--prefix", "ma", "--json"));
        Assert.Equal(40, names.Count);
        Assert.All(names, n => Assert.StartsWith("ma", n, StringComparison.Ordinal));
        Assert.Contains(names, n => n.Length > 2); // the model does add letters after the prefix

        var text = Feature.TextSamples(Cli.Run("--steps", "50", "--samples", "10", "--prefix", "ma"));
        Assert.Equal(10, text.Count);
        Assert.All(text, s => Assert.StartsWith("ma", s.Name, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("MA", "ma")]
    [InlineData("Ma", "ma")]
    [InlineData("\u00D6", "\u00F6")]   // Ö → ö
    [InlineData("o\u0308", "\u00F6")]  // o + combining diaeresis → ö (NFC, as the names are)
    public void PrefixIsLowerCasedAndNormalized(string given, string expected)
    {
        string[] args = ["--steps", "40", "--samples", "15", "--seed", "3", "--json"];
        var asGiven = Feature.Json(Cli.Run([.. args, "--prefix", given]));
        var canonical = Feature.Json(Cli.Run([.. args, "--prefix", expected]));
        Assert.Equal(expected, asGiven.GetProperty("options").GetProperty("prefix").GetString());
        var names = Feature.JsonSamples(asGiven);
        Assert.All(names, s => Assert.StartsWith(expected, s.Name, StringComparison.Ordinal));
        Assert.Equal(Feature.JsonSamples(canonical), names);
    }

    [Theory]
    [InlineData("#")]
    [InlineData("ma7")]
    [InlineData("m a")]
    [InlineData("\U0001F600")]
    public void PrefixWithACharacterNoNameHasIsExitTwo(string prefix)
    {
        var line = Cli.Run("--steps", "5", "--samples", "3", "--prefix", prefix).AssertOneError(2);
        Assert.Contains("--prefix", line);
        Cli.Run("--steps", "5", "--samples", "3", "--prefix", prefix, "--json").AssertOneError(2);
    }

    [Fact]
    public void PrefixIsCheckedAgainstTheNamesFileInUse()
    {
        // 'z' is in the bundled names but not in the syllable names
        using var file = new TempFile(TestData.SyllableNamesFile);
        Feature.Json(Cli.Run("--steps", "5", "--samples", "2", "--prefix", "z", "--json"));
        Assert.Contains("--prefix", Cli.Run("--names", file.Path, "--steps", "5", "--samples", "2", "--prefix", "z").AssertOneError(2));
    }

    [Theory]
    [InlineData(4, 6)]
    [InlineData(1, 3)]
    [InlineData(8, 50)]
    [InlineData(5, 5)]
    public void SampleLengthsAreWithinTheBounds(int min, int max)
    {
        var names = Feature.JsonNames(Cli.Run("--steps", "60", "--samples", "50", "--seed", "4", "--json",
            "--min-length", min.ToString(CultureInfo.InvariantCulture), "--max-length", max.ToString(CultureInfo.InvariantCulture)));
        Assert.Equal(50, names.Count);
        Assert.All(names, n => Assert.InRange(Feature.Length(n), min, max));
    }

    [Fact]
    public void LengthsAreCountedInCodePoints()
    {
        using var file = new TempFile(Feature.File(Feature.ClefNames));
        var names = Feature.JsonNames(Cli.Run("--names", file.Path, "--steps", "200", "--samples", "60", "--seed", "2",
            "--min-length", "4", "--max-length", "5", "--json"));
        Assert.Equal(60, names.Count);
        Assert.All(names, n => Assert.InRange(Feature.Length(n), 4, 5));
        // the check is not vacuous: some names are longer than 5 in UTF-16 units
        Assert.Contains(names, n => n.Length > 5);

        // a prefix of 2 code points (3 UTF-16 units) fits --max-length 2, and then is the whole name
        var exact = Feature.JsonNames(Cli.Run("--names", file.Path, "--steps", "20", "--samples", "5",
            "--prefix", "\U0001D11Eo", "--max-length", "2", "--json"));
        Assert.All(exact, n => Assert.Equal("\U0001D11Eo", n));
    }

    [Fact]
    public void MinLengthAboveMaxLengthIsExitTwo()
    {
        var line = Cli.Run("--steps", "5", "--min-length", "7", "--max-length", "6").AssertOneError(2);
        Assert.Contains("--min-length", line);
        Assert.Contains("--max-length", line);
        // equal bounds are fine
        Assert.Equal(0, Cli.Run("--steps", "5", "--samples", "2", "--min-length", "6", "--max-length", "6").Code);
    }

    [Fact]
    public void PrefixLongerThanMaxLengthIsExitTwo()
    {
        var line = Cli.Run("--steps", "5", "--prefix", "mar", "--max-length", "2").AssertOneError(2);
        Assert.Contains("--prefix", line);
        Assert.Contains("--max-length", line);
    }

    [Fact]
    public void ImpossibleRulesAreExitOneWithAnErrorThatSaysWhatToLoosen()
    {
        // two letters: at most two different names of one letter
        using var file = new TempFile("ab\nba\nabba\nbaab\naab\n");
        var r = Cli.Run("--names", file.Path, "--steps", "20", "--unique", "--samples", "500", "--max-length", "1");
        var line = r.AssertOneError(1);
        Assert.Contains("--unique", line);
        Assert.Contains("--max-length", line);
        Assert.Contains("loosen", line);
        Cli.Run("--names", file.Path, "--steps", "20", "--unique", "--samples", "500", "--max-length", "1", "--json").AssertOneError(1);

        // the same rules with a number of names that can be found succeed
        var names = Feature.JsonNames(Cli.Run("--names", file.Path, "--steps", "20", "--unique", "--samples", "2", "--max-length", "1", "--json"));
        Assert.Equal(["a", "b"], names.Order());
    }

    // README: "With --min-length, --max-length, --unique or --new-only, a drawn name that breaks a
    // rule is drawn again". Sampling.Sample instead stops drawing at rules.MaxLength, so a longer
    // name is cut off and printed: "--max-length 3" on names that are all 6 letters long prints
    // their first three letters ("ann" of "annika") rather than drawing again (or failing).
    [Fact]
    public void MaxLengthDoesNotCutNamesOff()
    {
        string[] sixes = ["annika", "bertil", "carola", "dagmar", "edvard", "fredom", "gunnar", "helena"];
        using var file = new TempFile(Feature.File(sixes));
        string[] args = ["--names", file.Path, "--steps", "300", "--batch-size", "64", "--lr", "0.5", "--temperature", "0.5", "--samples", "20", "--seed", "1"];
        // the model has learned the list: with no bound, its names are the list's 6-letter names
        var free = Feature.JsonNames(Cli.Run([.. args, "--json"]));
        Assert.True(free.Count(sixes.Contains) >= 18, string.Join(", ", free));
        // so it (almost) never ends a name after three letters: a name of at most 3 letters that is
        // the start of a list name was cut off, not drawn
        var r = Cli.Run([.. args, "--max-length", "3", "--json"]);
        if (r.Code == 0)
            foreach (var name in Feature.JsonNames(r))
                Assert.False(sixes.Any(s => s.StartsWith(name, StringComparison.Ordinal)), $"'{name}' is a list name cut off at --max-length");
        else
            Assert.Contains("--max-length", r.AssertOneError(1));
    }

    [Fact]
    public void UniqueNeverRepeatsAName()
    {
        using var file = new TempFile(TestData.SyllableNamesFile);
        string[] args = ["--names", file.Path, "--steps", "200", "--samples", "200", "--seed", "6", "--json"];
        var unique = Feature.JsonNames(Cli.Run([.. args, "--unique"]));
        Assert.Equal(200, unique.Count);
        Assert.Equal(200, unique.Distinct().Count());
        // without the flag, the same run repeats names: the flag is what prevents it
        var plain = Feature.JsonNames(Cli.Run(args));
        Assert.True(plain.Distinct().Count() < 200, "200 samples without --unique had no repeat");
    }

    [Fact]
    public void NewOnlyLeavesOutTrainingNames()
    {
        // forty real names, learned by heart in 300 steps
        using var dir = new TempDir();
        var names = Path.Combine(dir.Path, "names.txt");
        var model = Path.Combine(dir.Path, "model.bin");
        File.WriteAllText(names, Feature.File(TestData.TinyNames));
        string[] args = ["--names", names, "--steps", "300", "--context", "3", "--samples", "30", "--seed", "3", "--json", "--save", model];

        var all = Feature.JsonSamples(Feature.Json(Cli.Run(args)));
        var training = ModelFile.Load(model, 8).TrainingNames;
        Assert.Equal(36, training.Count); // 90% of 40
        Assert.Subset(TestData.TinyNames.ToHashSet(), training.ToHashSet());
        Assert.All(all, s => Assert.Equal(training.Contains(s.Name), s.InTraining));
        Assert.Contains(all, s => s.InTraining); // so --new-only has something to leave out

        var fresh = Feature.JsonSamples(Feature.Json(Cli.Run([.. args, "--new-only"])));
        Assert.Equal(30, fresh.Count);
        Assert.All(fresh, s =>
        {
            Assert.False(s.InTraining, s.Name);
            Assert.DoesNotContain(s.Name, training);
        });
        // text mode: no sample line is marked
        var text = Feature.TextSamples(Cli.Run([.. args.Where(a => a != "--json"), "--new-only"]));
        Assert.Equal(30, text.Count);
        Assert.All(text, s => Assert.False(s.InTraining, s.Name));
    }

    [Fact]
    public void RulesCombine()
    {
        using var file = new TempFile(TestData.SyllableNamesFile);
        var json = Feature.Json(Cli.Run("--names", file.Path, "--steps", "200", "--samples", "20", "--prefix", "Ba",
            "--min-length", "4", "--max-length", "6", "--unique", "--new-only", "--json"));
        var samples = Feature.JsonSamples(json);
        Assert.Equal(20, samples.Count);
        Assert.Equal(20, samples.Select(s => s.Name).Distinct().Count());
        Assert.All(samples, s =>
        {
            Assert.StartsWith("ba", s.Name, StringComparison.Ordinal);
            Assert.InRange(Feature.Length(s.Name), 4, 6);
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

// =================================================================================================
// --save, --load and ModelFile
// =================================================================================================

/// <summary>One model trained on the syllable names and saved, for the tests that load it.</summary>
public sealed class SavedModel : IDisposable
{
    readonly TempDir dir = new();
    public string Path { get; }
    public string NamesPath { get; }
    public byte[] Bytes { get; }
    public double TrainLoss { get; }
    internal static readonly string[] TrainArgs = ["--steps", "150", "--context", "4", "--dim", "16", "--batch-size", "32", "--lr", "0.5"];

    public SavedModel()
    {
        NamesPath = System.IO.Path.Combine(dir.Path, "names.txt");
        File.WriteAllText(NamesPath, TestData.SyllableNamesFile);
        Path = System.IO.Path.Combine(dir.Path, "model.bin");
        var json = Feature.Json(Cli.Run([.. TrainArgs, "--names", NamesPath, "--save", Path, "--samples", "0", "--json"]));
        TrainLoss = json.GetProperty("train_loss").GetDouble();
        Bytes = File.ReadAllBytes(Path);
    }

    public void Dispose() => dir.Dispose();
}

public class ModelFileTests(SavedModel saved) : IClassFixture<SavedModel>
{
    [Fact]
    public void SavedThenLoadedGivesTheSameSamplesForTheSameSeed()
    {
        using var dir = new TempDir();
        var names = Path.Combine(dir.Path, "names.txt");
        var model = Path.Combine(dir.Path, "model.bin");
        File.WriteAllText(names, TestData.SyllableNamesFile);
        string[] sampling = ["--samples", "25", "--seed", "9", "--temperature", "1.5"];

        var trainedText = Cli.Run([.. SavedModel.TrainArgs, "--names", names, "--save", model, .. sampling]);
        var loadedText = Cli.Run(["--load", model, .. sampling]);
        var samples = Feature.TextSamples(trainedText);
        Assert.Equal(25, samples.Count);
        Assert.Equal(samples, Feature.TextSamples(loadedText));
        Assert.Contains(model, loadedText.Out);
        Assert.Contains("150", loadedText.Out.Split('\n')[0]); // "Loaded: … (trained for 150 steps)"

        var trainedJson = Feature.Json(Cli.Run([.. SavedModel.TrainArgs, "--names", names, "--save", model, .. sampling, "--json"]));
        var loadedJson = Feature.Json(Cli.Run(["--load", model, .. sampling, "--json"]));
        Assert.Equal(Feature.JsonSamples(trainedJson), Feature.JsonSamples(loadedJson));
        Assert.Equal(samples, Feature.JsonSamples(loadedJson));
        foreach (var field in new[] { "train_loss", "val_loss", "bigram_val_loss", "data_mean_length", "new_share", "mean_length" })
            Assert.Equal(trainedJson.GetProperty(field).GetDouble(), loadedJson.GetProperty(field).GetDouble());
        Assert.Equal(trainedJson.GetProperty("vocab_size").GetInt32(), loadedJson.GetProperty("vocab_size").GetInt32());
        Assert.Equal(model, loadedJson.GetProperty("options").GetProperty("load").GetString());
        Assert.Equal(4, loadedJson.GetProperty("options").GetProperty("context").GetInt32()); // the model's, not the default 6

        // and a different seed gives different samples from the same file
        Assert.NotEqual(samples.Select(s => s.Name), Feature.JsonNames(Cli.Run("--load", model, "--samples", "25", "--seed", "10", "--temperature", "1.5", "--json")));
    }

    [Fact]
    public void SamplingOptionsWorkWithLoad()
    {
        var samples = Feature.JsonSamples(Feature.Json(Cli.Run("--load", saved.Path, "--samples", "10", "--prefix", "ki",
            "--temperature", "0.8", "--top-k", "5", "--unique", "--new-only", "--min-length", "4", "--json")));
        Assert.Equal(10, samples.Count);
        Assert.All(samples, s =>
        {
            Assert.StartsWith("ki", s.Name, StringComparison.Ordinal);
            Assert.True(Feature.Length(s.Name) >= 4, s.Name);
            Assert.False(s.InTraining);
        });
        Assert.Contains("--prefix", Cli.Run("--load", saved.Path, "--prefix", "z").AssertOneError(2));
    }

    public static TheoryData<string[]> TrainingOptions => new()
    {
        { ["--context", "3"] }, { ["--steps", "5"] }, { ["--names", "names.txt"] }, { ["--lr", "0.2"] },
        { ["--batch-size", "8"] }, { ["--dim", "8"] }, { ["--order-blind"] }, { ["--seconds", "2"] },
        { ["--context", "6"] }, // the default value, given explicitly, is still a training option
    };

    [Theory]
    [MemberData(nameof(TrainingOptions))]
    public void LoadWithATrainingOptionIsExitTwo(string[] option)
    {
        var line = Cli.Run(["--load", saved.Path, "--samples", "2", .. option]).AssertOneError(2);
        Assert.Contains(option[0], line);
        Assert.Contains("--load", line);
        Cli.Run([.. option, "--load", saved.Path, "--json"]).AssertOneError(2);
    }

    public static TheoryData<string> DamagedKinds => new()
    {
        "truncated", "truncated to the header", "one byte flipped", "last byte flipped", "empty", "names.txt",
        "random bytes", "wrong version", "directory", "missing", "extra byte",
    };

    [Theory]
    [MemberData(nameof(DamagedKinds))]
    public void LoadingABadFileIsExitOneWithOneLineNamingIt(string kind)
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "model.bin");
        var good = saved.Bytes;
        byte[]? bytes = kind switch
        {
            "truncated" => good[..(good.Length / 2)],
            "truncated to the header" => good[..12],
            "one byte flipped" => Flip(good, good.Length / 2),
            "last byte flipped" => Flip(good, good.Length - 1),
            "empty" => [],
            "names.txt" => File.ReadAllBytes(Path.Combine(TestData.AppFolder, "names.txt")),
            "random bytes" => RandomBytes(good.Length),
            "wrong version" => WithVersion(good, 2),
            "extra byte" => [.. good, 0],
            _ => null,
        };
        if (bytes is not null) File.WriteAllBytes(path, bytes);
        if (kind == "directory") Directory.CreateDirectory(path);

        var line = Cli.Run("--load", path, "--samples", "3").AssertOneError(1);
        Assert.Contains(path, line);
        Assert.DoesNotContain("internal error", line);
        Assert.Contains(path, Cli.Run("--load", path, "--samples", "3", "--json").AssertOneError(1));
        if (kind == "directory") Assert.True(Directory.Exists(path));
        else if (bytes is not null) Assert.Equal(bytes, File.ReadAllBytes(path)); // a load never writes

        static byte[] Flip(byte[] b, int at) { var c = (byte[])b.Clone(); c[at] ^= 0x10; return c; }
        static byte[] RandomBytes(int n) { var c = new byte[n]; new Random(5).NextBytes(c); return c; }
        static byte[] WithVersion(byte[] b, uint v)
        {
            var c = (byte[])b.Clone();
            BitConverter.GetBytes(v).CopyTo(c, 8);
            Feature.Rehash(c);
            return c;
        }
    }

    // A file whose checksum is right but whose contents are not: every byte of the header, the
    // vocabulary, the figures and the start of the names, set to a few values, with the checksum
    // recomputed. The loader must refuse it with one line or sample from it, and never fail with
    // an internal error.
    [Fact]
    public void DamageBehindAValidChecksumIsRefusedOrHarmless()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "model.bin");
        var good = saved.Bytes;
        int refused = 0;
        for (int at = 8; at < Math.Min(good.Length - 8, 200); at++)
            foreach (byte value in new byte[] { 0x00, 0xFF, 0x80, (byte)(good[at] ^ 0x01) })
            {
                if (value == good[at]) continue;
                var bytes = (byte[])good.Clone();
                bytes[at] = value;
                Feature.Rehash(bytes);
                File.WriteAllBytes(path, bytes);
                var r = Cli.Run("--load", path, "--samples", "1");
                if (r.Code == 0) { Assert.Equal("", r.Err); continue; }
                refused++;
                var line = r.AssertOneError(1);
                Assert.True(line.Contains(path) && !line.Contains("internal error"), $"byte {at} = 0x{value:X2}: {line}");
            }
        Assert.True(refused > 50, $"only {refused} of the damaged files were refused");
    }

    /// <summary>Where the figures of the run (train loss, validation loss, bigram loss, mean
    /// length) start in a model file: after the magic, version, sizes, vocabulary and steps.</summary>
    // magic, version, six sizes, the variant byte, V−1 characters, the name count, the step count
    static int FiguresOffset(byte[] bytes) => 8 + 4 + 6 * 4 + 1 + 4 * (BitConverter.ToInt32(bytes, 12) - 1) + 4 + 8;

    // The checksum only catches accidents. A file with a valid checksum whose figures are NaN or
    // infinite must still be refused (or at least reported) with one line, never end in an
    // internal error such as the JSON writer's refusal of non-finite numbers.
    [Theory]
    [InlineData(0, double.NaN)]
    [InlineData(1, double.PositiveInfinity)]
    [InlineData(3, double.NegativeInfinity)]
    public void NonFiniteFiguresInAModelFileAreNotAnInternalError(int figure, double value)
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "model.bin");
        var bytes = (byte[])saved.Bytes.Clone();
        int at = FiguresOffset(bytes) + 8 * figure;
        Assert.Equal(saved.TrainLoss, BitConverter.ToDouble(bytes, FiguresOffset(bytes))); // the offset is right
        BitConverter.GetBytes(value).CopyTo(bytes, at);
        Feature.Rehash(bytes);
        File.WriteAllBytes(path, bytes);
        // either refused as a damaged file, or loaded and reported (text mode prints "NaN")
        foreach (var json in new[] { false, true })
        {
            var r = Cli.Run(json ? ["--load", path, "--samples", "2", "--json"] : ["--load", path, "--samples", "2"]);
            if (r.Code != 0) Assert.Contains(path, r.AssertOneError(1), StringComparison.Ordinal);
            else if (json) Feature.Json(r);
            else r.AssertSuccess();
            Assert.DoesNotContain("internal error", r.Err, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ANegativeNameLengthBehindAValidChecksumIsDamage()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "model.bin");
        var bytes = (byte[])saved.Bytes.Clone();
        // after the four figures: the count of training names, then the first name's length
        int firstName = FiguresOffset(bytes) + 4 * 8 + 4;
        new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0x0F }.CopyTo(bytes, firstName); // a length of −1
        Feature.Rehash(bytes);
        File.WriteAllBytes(path, bytes);
        var error = Cli.Run("--load", path, "--samples", "1").AssertOneError(1);
        Assert.Contains("is damaged", error);
        Assert.Contains(path, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--save")]
    [InlineData("--load")]
    [InlineData("--names")]
    public void AnEmptyFileNameIsABadCommandLine(string option)
    {
        var error = Cli.Run("--steps", "5", "--samples", "1", option, "").AssertOneError(2);
        Assert.Contains(option + " needs a file name", error);
    }

    [Fact]
    public void SaveLeavesNoTemporaryFileAndReplacesAnOldModel()
    {
        using var dir = new TempDir();
        var names = Path.Combine(dir.Path, "names.txt");
        var model = Path.Combine(dir.Path, "model.bin");
        File.WriteAllText(names, TestData.SyllableNamesFile);
        File.WriteAllText(model, "not a model yet");

        string[] Files() => Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName).Order().ToArray()!;
        JsonElement TrainAndSave(string seed) =>
            Feature.Json(Cli.Run([.. SavedModel.TrainArgs, "--names", names, "--save", model, "--seed", seed, "--samples", "10", "--json"]));

        var first = TrainAndSave("1");
        Assert.Equal(["model.bin", "names.txt"], Files());
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp-*"));
        var firstBytes = File.ReadAllBytes(model);
        Assert.Equal("BABYNAME"u8.ToArray(), firstBytes[..8]);

        var second = TrainAndSave("2");
        Assert.Equal(["model.bin", "names.txt"], Files());
        Assert.NotEqual(firstBytes, File.ReadAllBytes(model));
        // the file now holds the second model: loading it with the second seed gives its samples
        var loaded = Feature.Json(Cli.Run("--load", model, "--seed", "2", "--samples", "10", "--json"));
        Assert.Equal(Feature.JsonSamples(second), Feature.JsonSamples(loaded));
        Assert.Equal(second.GetProperty("val_loss").GetDouble(), loaded.GetProperty("val_loss").GetDouble());
        Assert.NotEqual(first.GetProperty("val_loss").GetDouble(), loaded.GetProperty("val_loss").GetDouble());
    }

    // The command-line face of the bug in ModelFileSaveIntoAMissingFolderIsAUserError: exit 1 and
    // one line, but "error: internal error (DirectoryNotFoundException: ...); please report it".
    [Fact]
    public void SavingIntoAFolderThatDoesNotExistIsExitOne()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "no-such-folder", "model.bin");
        var line = Cli.Run("--steps", "5", "--samples", "2", "--save", path).AssertOneError(1);
        Assert.Contains(path, line);
        Assert.DoesNotContain("internal error", line);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void SavingOverAFolderIsExitOneAndLeavesNothingBehind()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "model.bin");
        Directory.CreateDirectory(path);
        var line = Cli.Run("--steps", "5", "--samples", "2", "--save", path).AssertOneError(1);
        Assert.Contains(path, line);
        Assert.DoesNotContain("internal error", line);
        Assert.True(Directory.Exists(path));
        Assert.Equal(["model.bin"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
    }

    /// <summary>A model trained a little on names with accents and a character outside the BMP.</summary>
    static Trained MakeTrained(bool positional, int dim)
    {
        List<string> names = [.. TestData.SyllableNames, "zoë", "jürgen", "\U0001D11Eoba", "o'neil", "anne-marie"];
        var corpus = Corpus.Split(names, new Rng(4, 1));
        var model = new Model(corpus.Vocab.Size, 3, dim, 16, positional, new Rng(4, 2));
        var result = Trainer.Train(model, new Examples(corpus.Train, corpus.Vocab, 3), 0.5f, 0, 60, new Rng(4, 3));
        return new(model, corpus.Vocab, corpus.Train.ToHashSet(), names.Count, result.Steps, result.TrainLoss, 2.25, 2.5, 4.75);
    }

    [Theory]
    [InlineData(true, 16)]
    [InlineData(false, 5)]
    [InlineData(true, 40)]
    public void ModelFileRoundTripsEveryBit(bool positional, int dim)
    {
        var t = MakeTrained(positional, dim);
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "direct.bin");
        ModelFile.Save(t, path);
        Assert.Equal(["direct.bin"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));

        var u = ModelFile.Load(path, 7); // any batch size: it only sizes the step buffers
        var (a, b) = (t.Model, u.Model);
        Assert.Equal((a.V, a.K, a.D, a.Width, a.Positional), (b.V, b.K, b.D, b.Width, b.Positional));
        Assert.Equal(7, b.BatchSize);
        for (int p = 0; p < 3; p++)
        {
            Assert.Equal((a.Params[p].Rows, a.Params[p].Cols), (b.Params[p].Rows, b.Params[p].Cols));
            Assert.Equal(a.Params[p].Data.Select(BitConverter.SingleToInt32Bits), b.Params[p].Data.Select(BitConverter.SingleToInt32Bits));
        }
        Assert.Equal(t.Vocab.Characters, u.Vocab.Characters);
        Assert.Equal(t.Vocab.Size, u.Vocab.Size);
        Assert.Contains(new System.Text.Rune(0x1D11E), u.Vocab.Characters);
        Assert.Equal(t.TrainingNames.Order(StringComparer.Ordinal), u.TrainingNames.Order(StringComparer.Ordinal));
        Assert.Equal((t.Steps, t.TrainLoss, t.ValidationLoss, t.BigramLoss, t.MeanLength),
            (u.Steps, u.TrainLoss, u.ValidationLoss, u.BigramLoss, u.MeanLength));

        // and the loaded model samples exactly what the saved one does
        var rules = new SamplingRules(Temperature: 1.3f);
        var (ra, rb) = (new Rng(8, 4), new Rng(8, 4));
        for (int i = 0; i < 30; i++)
            Assert.Equal(Sampling.Sample(a, t.Vocab, ra, rules), Sampling.Sample(b, u.Vocab, rb, rules));
    }

    [Fact]
    public void ModelFileSaveOverwritesAndLeavesNoTemporaryFile()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "m.bin");
        var first = MakeTrained(true, 16);
        var second = MakeTrained(false, 8);
        ModelFile.Save(first, path);
        ModelFile.Save(second, path);
        Assert.Equal(["m.bin"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
        var loaded = ModelFile.Load(path, 4);
        Assert.False(loaded.Model.Positional);
        Assert.Equal(8, loaded.Model.D);
    }

    // ModelFile.Save catches the IOException of writing the temporary file and then calls
    // File.Delete on it, which throws DirectoryNotFoundException when the folder does not exist;
    // that escapes as "error: internal error (DirectoryNotFoundException: ...); please report it".
    [Fact]
    public void ModelFileSaveIntoAMissingFolderIsAUserError()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "missing", "m.bin");
        var e = Assert.Throws<UserError>(() => ModelFile.Save(MakeTrained(true, 16), path));
        Assert.Equal(1, e.ExitCode);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }
}

// =================================================================================================
// Quality figures
// =================================================================================================

public class QualityFigureTests
{
    // duplicates (after trimming and lower-casing) and blank lines that the figures must not count
    static readonly string NamesText = Feature.File([.. Feature.ClefNames, "BABA", "  deki ", "", "Ki\U0001D11Eo", "LOLO"]);

    static double DataMeanLength()
    {
        var distinct = NamesText.Split('\n').Select(l => l.Trim().ToLowerInvariant()).Where(l => l.Length > 0).Distinct().ToList();
        Assert.Equal(150, distinct.Count);
        return distinct.Average(Feature.Length);
    }

    [Fact]
    public void JsonFiguresMatchTheSamples()
    {
        using var file = new TempFile(NamesText);
        var json = Feature.Json(Cli.Run("--names", file.Path, "--steps", "120", "--samples", "60", "--seed", "8", "--json"));
        var samples = Feature.JsonSamples(json);
        Assert.Equal(60, samples.Count);
        // the figures below are only meaningful if both kinds of sample occur
        Assert.Contains(samples, s => s.InTraining);
        Assert.Contains(samples, s => !s.InTraining);
        Assert.Contains(samples, s => s.Name.Length != Feature.Length(s.Name));

        double newShare = json.GetProperty("new_share").GetDouble();
        Assert.InRange(newShare, 0, 1);
        Assert.Equal(samples.Count(s => !s.InTraining) / 60.0, newShare, 1e-12);
        Assert.Equal(samples.Average(s => Feature.Length(s.Name)), json.GetProperty("mean_length").GetDouble(), 1e-9);
        Assert.Equal(DataMeanLength(), json.GetProperty("data_mean_length").GetDouble(), 1e-9);
        double bigram = json.GetProperty("bigram_val_loss").GetDouble();
        Assert.True(double.IsFinite(bigram) && bigram > 0, $"bigram_val_loss {bigram}");
        Assert.True(bigram < Math.Log(json.GetProperty("vocab_size").GetInt32()), "the bigram is no better than guessing");
    }

    [Fact]
    public void FiguresWithNoSamples()
    {
        var json = Feature.Json(Cli.Run("--steps", "5", "--samples", "0", "--json"));
        Assert.Equal(0, json.GetProperty("new_share").GetDouble());
        Assert.Equal(0, json.GetProperty("mean_length").GetDouble());
        Assert.True(json.GetProperty("data_mean_length").GetDouble() > 1);
        var text = Cli.Run("--steps", "5", "--samples", "0");
        Assert.DoesNotContain("New names:", text.Out);
        Assert.StartsWith("Validation loss: ", text.OutLines[^1]);
    }

    [Fact]
    public void TextSummaryLinesAgreeWithJson()
    {
        using var file = new TempFile(NamesText);
        string[] args = ["--names", file.Path, "--steps", "120", "--samples", "60", "--seed", "8"];
        var text = Cli.Run(args);
        var json = Feature.Json(Cli.Run([.. args, "--json"]));
        var samples = Feature.TextSamples(text);
        Assert.Equal(Feature.JsonSamples(json), samples);

        var lines = text.OutLines;
        var newNames = Regex.Match(lines[^2], @"^New names: (\d+) of (\d+) \((\d+)%\); mean length (\d+\.\d) characters \(the data's: (\d+\.\d)\)$");
        Assert.True(newNames.Success, lines[^2]);
        var validation = Regex.Match(lines[^1], @"^Validation loss: (\d+\.\d{3}) for this model, (\d+\.\d{3}) for a count bigram$");
        Assert.True(validation.Success, lines[^1]);
        double Number(Match m, int group) => double.Parse(m.Groups[group].Value, CultureInfo.InvariantCulture);

        Assert.Equal(samples.Count(s => !s.InTraining), (int)Number(newNames, 1));
        Assert.Equal(60, (int)Number(newNames, 2));
        Assert.Equal(json.GetProperty("new_share").GetDouble() * 100, Number(newNames, 3), 0.5 + 1e-9);
        Assert.Equal(json.GetProperty("mean_length").GetDouble(), Number(newNames, 4), 0.05 + 1e-9);
        Assert.Equal(DataMeanLength(), Number(newNames, 5), 0.05 + 1e-9);
        Assert.Equal(json.GetProperty("val_loss").GetDouble(), Number(validation, 1), 0.0005 + 1e-9);
        Assert.Equal(json.GetProperty("bigram_val_loss").GetDouble(), Number(validation, 2), 0.0005 + 1e-9);
    }

    /// <summary>Add-one bigram written out: p(next | previous) = (count(previous, next) + 1) /
    /// (count(previous) + V) over "^name$" pairs of the training names, '^' and '$' being the one
    /// boundary symbol; the mean of −log p over the validation names' pairs.</summary>
    static double NaiveBigramLoss(string[] train, string[] validation)
    {
        const char boundary = '\0';
        var symbols = train.Concat(validation).SelectMany(n => n).Distinct().Append(boundary).ToList();
        int V = symbols.Count;
        IEnumerable<(char, char)> Pairs(string name)
        {
            var s = boundary + name + boundary;
            for (int i = 0; i + 1 < s.Length; i++) yield return (s[i], s[i + 1]);
        }
        var pairCounts = train.SelectMany(Pairs).GroupBy(p => p).ToDictionary(g => g.Key, g => g.Count());
        var previousCounts = train.SelectMany(Pairs).GroupBy(p => p.Item1).ToDictionary(g => g.Key, g => g.Count());
        var losses = validation.SelectMany(Pairs).Select(p =>
            -Math.Log((pairCounts.GetValueOrDefault(p) + 1.0) / (previousCounts.GetValueOrDefault(p.Item1) + V))).ToList();
        return losses.Average();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(6)]
    public void CountBigramLossMatchesANaiveAddOneBigram(int K)
    {
        string[] train = ["anna", "ada", "nan", "dan", "nina", "ian"], validation = ["dana", "ann", "zed"];
        var vocab = new Vocabulary(train.Concat(validation));
        double loss = Trainer.CountBigramLoss(new Examples(train, vocab, K), new Examples(validation, vocab, K), vocab.Size);
        Assert.Equal(NaiveBigramLoss(train, validation), loss, 1e-12);
    }
}

// =================================================================================================
// Progress output and the loss curve
// =================================================================================================

public class ProgressTests
{
    static (Corpus corpus, Examples train) Syllables(int K = 4)
    {
        var corpus = Corpus.Split([.. TestData.SyllableNames], new Rng(1, 1));
        return (corpus, new Examples(corpus.Train, corpus.Vocab, K));
    }

    static Model NewModel(Corpus corpus, int batch = 32) => new(corpus.Vocab.Size, 4, 16, batch, true, new Rng(1, 2));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void StderrIsEmptyOnSuccessWhenItIsNotATerminal(bool json)
    {
        string[] args = ["--steps", "300", "--samples", "3", "--batch-size", "64"];
        var r = Cli.Run(json ? [.. args, "--json"] : args);
        Assert.Equal(0, r.Code);
        Assert.Equal("", r.Err);
        // nor did any of it end up on stdout
        Assert.DoesNotContain("\r", r.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b", r.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("\u2581", r.Out, StringComparison.Ordinal); // the sparkline's lowest block
        Assert.DoesNotContain("examples/s  loss", r.Out);
    }

    [Fact]
    public void AProgressCallbackDoesNotChangeTheRun()
    {
        var (corpus, train) = Syllables();
        var calls = new List<(long Step, double Elapsed, float Loss)>();
        var plain = NewModel(corpus);
        var watched = NewModel(corpus);
        var a = Trainer.Train(plain, train, 0.5f, 0, 3000, new Rng(1, 3));
        var b = Trainer.Train(watched, train, 0.5f, 0, 3000, new Rng(1, 3), progress: (s, e, l) => calls.Add((s, e, l)));

        Assert.Equal(3000, b.Steps);
        Assert.Equal(a.Steps, b.Steps);
        Assert.Equal(a.TrainLoss, b.TrainLoss);
        Assert.Equal(a.LossCurve, b.LossCurve);
        for (int p = 0; p < 3; p++) Assert.Equal(plain.Params[p].Data, watched.Params[p].Data);
        // whatever calls there were (a fast machine may make none) report real steps, in order
        Assert.All(calls, c => Assert.True(c.Step is > 0 and <= 3000 && float.IsFinite(c.Loss), $"{c}"));
        Assert.Equal(calls.Select(c => c.Step).Order(), calls.Select(c => c.Step));
    }

    [Fact]
    public void LossCurveHasAllItsPointsAndFallsOnALearnableList()
    {
        var (corpus, train) = Syllables();
        var result = Trainer.Train(NewModel(corpus), train, 0.5f, 0, 1000, new Rng(1, 3));
        Assert.Equal(Trainer.CurvePoints, result.LossCurve.Length);
        Assert.All(result.LossCurve, x => Assert.True(float.IsFinite(x) && x > 0, $"{x}"));
        Assert.True(result.LossCurve[0] > result.LossCurve[^1] + 0.5f, $"curve {result.LossCurve[0]} → {result.LossCurve[^1]}");
        // each point is a mean of losses, the last one ending with the final step's loss
        Assert.InRange(result.LossCurve[^1], result.TrainLoss * 0.5f, result.TrainLoss * 2f);
    }

    /// <summary>The training loss after each of the first n steps: the final loss of runs of 1, 2,
    /// ... n steps from the same start (training is deterministic).</summary>
    static float[] StepLosses(int n)
    {
        var (corpus, train) = Syllables();
        return Enumerable.Range(1, n).Select(s => Trainer.Train(NewModel(corpus, 8), train, 0.5f, 0, s, new Rng(1, 3)).TrainLoss).ToArray();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(10)]
    public void WithFewerStepsThanPointsEachStepHasItsOwnPointAndTheRestAreNaN(int steps)
    {
        var (corpus, train) = Syllables();
        var curve = Trainer.Train(NewModel(corpus, 8), train, 0.5f, 0, steps, new Rng(1, 3)).LossCurve;
        Assert.Equal(Trainer.CurvePoints, curve.Length);
        Assert.All(curve, x => Assert.True(float.IsFinite(x) || float.IsNaN(x)));
        // in order of the points: the losses of steps 1, 2, ..., n
        Assert.Equal(StepLosses(steps), curve.Where(float.IsFinite));
    }

    // Trainer.Train files step s (1-based) of n under point (s / n)·CurvePoints, capped at the last
    // point: the first point only gets steps when n > CurvePoints, and the last point gets two. With
    // exactly CurvePoints steps, point 0 is NaN and point 39 averages steps 39 and 40.
    [Fact]
    public void WithAsManyStepsAsPointsEachPointIsOneStep()
    {
        var (corpus, train) = Syllables();
        var curve = Trainer.Train(NewModel(corpus, 8), train, 0.5f, 0, Trainer.CurvePoints, new Rng(1, 3)).LossCurve;
        Assert.Equal(StepLosses(Trainer.CurvePoints), curve);
    }
}

// =================================================================================================
// Ctrl+C
// =================================================================================================

public class CancellationTests
{
    static CancellationToken Cancelled() => new(canceled: true);

    [Fact]
    public void TrainingWithACancelledTokenStopsAfterOneStep()
    {
        var corpus = Corpus.Split([.. TestData.SyllableNames], new Rng(1, 1));
        var model = new Model(corpus.Vocab.Size, 4, 16, 32, true, new Rng(1, 2));
        var result = Trainer.Train(model, new Examples(corpus.Train, corpus.Vocab, 4), 0.5f, 100, null, new Rng(1, 3), Cancelled());
        Assert.Equal(1, result.Steps);
    }

    [Fact]
    public void TrainingWithACancelledTokenStopsLongBeforeItsTime()
    {
        var corpus = Corpus.Split([.. TestData.SyllableNames], new Rng(1, 1));
        var model = new Model(corpus.Vocab.Size, 4, 16, 32, true, new Rng(1, 2));
        // 100 seconds would be millions of steps; a cancelled run stops at once (at least one step)
        var result = Trainer.Train(model, new Examples(corpus.Train, corpus.Vocab, 4), 0.5f, 100, null, new Rng(1, 3), Cancelled());
        Assert.InRange(result.Steps, 1, 16);
        Assert.True(float.IsFinite(result.TrainLoss));
    }

    [Fact]
    public void ProgramWithACancelledTokenStillSamples()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["--seconds", "100", "--samples", "3", "--json"], stdout, stderr, Cancelled());
        var json = Feature.Json(new CliResult(code, stdout.ToString(), stderr.ToString()));
        Assert.True(json.GetProperty("stopped_early").GetBoolean());
        Assert.Equal(3, Feature.JsonSamples(json).Count);
        Assert.InRange(json.GetProperty("steps").GetInt64(), 1, 1000);
        Assert.True(double.IsFinite(json.GetProperty("val_loss").GetDouble()));

        stdout = new StringWriter();
        stderr = new StringWriter();
        code = Program.Run(["--seconds", "100", "--samples", "3"], stdout, stderr, Cancelled());
        var text = new CliResult(code, stdout.ToString(), stderr.ToString());
        Assert.Equal(3, Feature.TextSamples(text).Count);
        Assert.Matches(@"^Elapsed: \d+\.\d{3} seconds \(stopped early with Ctrl\+C\)$", text.OutLines[0]);
    }

    [Fact]
    public void WithoutCtrlCTheRunIsNotStoppedEarly()
    {
        Assert.False(Feature.Json(Cli.Run("--steps", "20", "--samples", "1", "--json")).GetProperty("stopped_early").GetBoolean());
        Assert.DoesNotContain("stopped early", Cli.Run("--steps", "20", "--samples", "1").OutLines[0]);
    }

    // ---------------------------------------------------------------------------------------------
    // The built program as a child process

    static readonly string AppDll = Path.Combine(AppContext.BaseDirectory, "BabyNames.dll");

    static string DotnetHost =>
        Environment.ProcessPath is string p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";

    /// <summary>Signal mask of a process from /proc (SigIgn, SigCgt, ...); bit n−1 is signal n.</summary>
    static ulong SignalMask(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return ulong.Parse(line[(field.Length + 1)..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        return 0;
    }

    const ulong SigInt = 1UL << (2 - 1);

    static Process StartApp(params string[] args)
    {
        Assert.True(File.Exists(AppDll), $"{AppDll} is missing");
        var start = new ProcessStartInfo
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true,
            UseShellExecute = false, WorkingDirectory = Path.GetTempPath(),
        };
        // A process started with SIGINT ignored (say, by a shell without job control) passes that on
        // to its children, and .NET then leaves it ignored: undo it for the child.
        bool inherited = OperatingSystem.IsLinux() && (SignalMask(Environment.ProcessId, "SigIgn") & SigInt) != 0;
        start.FileName = inherited ? "env" : DotnetHost;
        if (inherited) { start.ArgumentList.Add("--default-signal=INT"); start.ArgumentList.Add(DotnetHost); }
        start.ArgumentList.Add(AppDll);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        return Process.Start(start)!;
    }

    [Fact]
    public async Task TheBuiltProgramWritesNothingToARedirectedStderr()
    {
        using var app = StartApp("--steps", "300", "--samples", "3");
        var stdout = app.StandardOutput.ReadToEndAsync();
        var stderr = app.StandardError.ReadToEndAsync();
        try
        {
            Assert.True(app.WaitForExit(30_000), "the program did not finish");
            var (output, errors) = (await stdout, await stderr);
            Assert.True(app.ExitCode == 0, $"exit code {app.ExitCode}; stderr: {errors}");
            Assert.Equal("", errors); // no progress line, no sparkline
            Assert.Equal(3, Feature.TextSamples(output).Count);
            Assert.DoesNotContain("\u001b", output, StringComparison.Ordinal);
        }
        finally { if (!app.HasExited) app.Kill(entireProcessTree: true); }
    }

    [Fact]
    public async Task SigintStopsTrainingAndTheProgramStillPrintsItsSamples()
    {
        Assert.True(OperatingSystem.IsLinux(), "this test sends SIGINT through /bin/kill and reads /proc");
        var clock = Stopwatch.StartNew();
        using var app = StartApp("--seconds", "30", "--samples", "3");
        var stdout = app.StandardOutput.ReadToEndAsync();
        var stderr = app.StandardError.ReadToEndAsync();
        try
        {
            // The runtime starts catching SIGINT early on, and the program's Ctrl+C handler is the
            // first thing its Main sets up. Wait until SIGINT is caught and at least 1.5 s have
            // passed, so that training is under way: the program trains for 30 s unless the
            // signal stops it.
            while (!app.HasExited && (SignalMask(app.Id, "SigCgt") & SigInt) == 0 && clock.Elapsed < TimeSpan.FromSeconds(10))
                await Task.Delay(20);
            Assert.False(app.HasExited, "the program ended before the signal was sent");
            Assert.True((SignalMask(app.Id, "SigCgt") & SigInt) != 0,
                $"the program does not catch SIGINT (its SigIgn: {SignalMask(app.Id, "SigIgn"):X}, the test's: {SignalMask(Environment.ProcessId, "SigIgn"):X})");
            var wait = TimeSpan.FromSeconds(1.5) - clock.Elapsed;
            if (wait > TimeSpan.Zero) await Task.Delay(wait);
            Assert.False(app.HasExited, "the program ended before the signal was sent");

            using (var kill = Process.Start("kill", ["-INT", app.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                kill.WaitForExit();
                Assert.Equal(0, kill.ExitCode);
            }
            Assert.True(app.WaitForExit(10_000), "the program did not finish within 10 s of SIGINT");
            var (output, errors) = (await stdout, await stderr);
            Assert.True(app.ExitCode == 0, $"exit code {app.ExitCode}; stderr: {errors}");
            Assert.Equal("", errors);
            var samples = Feature.TextSamples(output);
            Assert.Equal(3, samples.Count);
            Assert.All(samples, s => Assert.NotEqual("", s.Name.Trim()));
            Assert.Matches(@"^Elapsed: \d+\.\d{3} seconds \(stopped early with Ctrl\+C\)\n", output.Replace("\r\n", "\n"));
        }
        finally { if (!app.HasExited) app.Kill(entireProcessTree: true); }
    }
}
