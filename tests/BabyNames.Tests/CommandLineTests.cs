using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace BabyNames.Tests;

/// <summary>The whole program through <see cref="Program.Run"/>, as a user sees it.</summary>
public class CommandLineTests
{
    static readonly Regex SampleLine = new(@"^ *(\d+) : (.*?)( \(in training data\))?$");

    sealed record TextReport(double Seconds, string StepsLine, double TrainLoss, double ValLoss, List<(int Number, string Name, bool InTraining)> Samples, string[] Lines);

    static TextReport ParseText(CliResult r)
    {
        r.AssertSuccess();
        var lines = r.OutLines;
        var elapsed = Regex.Match(lines[0], @"^Elapsed: (\d+\.\d{3}) seconds$");
        Assert.True(elapsed.Success, $"line 1: {lines[0]}");
        Assert.Matches(@"^Steps: [\d,]+ \(\d+\.\d\d M examples/s\)$", lines[1]);
        var loss = Regex.Match(lines[2], @"^Final loss: (\d+\.\d{3}) \(train\) (\d+\.\d{3}) \(validation\)$");
        Assert.True(loss.Success, $"line 3: {lines[2]}");
        Assert.Equal("Samples:", lines[3]);
        // after the samples: "New names: …" (when there are samples) and "Validation loss: …"
        Assert.Matches(@"^Validation loss: \d+\.\d{3} for this model, \d+\.\d{3} for a count bigram$", lines[^1]);
        int trailing = lines.Length > 5 && lines[^2].StartsWith("New names: ") ? 2 : 1;
        if (trailing == 2)
            Assert.Matches(@"^New names: \d+ of \d+ \(\d+%\); mean length \d+\.\d characters \(the data's: \d+\.\d\)$", lines[^2]);
        var samples = lines.Skip(4).Take(lines.Length - 4 - trailing).Select(line =>
        {
            var m = SampleLine.Match(line);
            Assert.True(m.Success, $"sample line: '{line}'");
            return (int.Parse(m.Groups[1].Value), m.Groups[2].Value, m.Groups[3].Success);
        }).ToList();
        return new(double.Parse(elapsed.Groups[1].Value, CultureInfo.InvariantCulture), lines[1],
            double.Parse(loss.Groups[1].Value, CultureInfo.InvariantCulture), double.Parse(loss.Groups[2].Value, CultureInfo.InvariantCulture),
            samples, lines);
    }

    static JsonElement ParseJson(CliResult r)
    {
        r.AssertSuccess();
        using var doc = JsonDocument.Parse(r.Out);
        return doc.RootElement.Clone();
    }

    // ---------------------------------------------------------------------------------------------
    // Successful runs

    [Fact]
    public void DefaultRunPrintsTheReport()
    {
        var report = ParseText(Cli.Run("--steps", "20", "--samples", "5"));
        Assert.StartsWith("Steps: 20 (", report.StepsLine);
        Assert.Equal([1, 2, 3, 4, 5], report.Samples.Select(s => s.Number));
        Assert.Equal(4 + 5 + 2, report.Lines.Length);
        Assert.InRange(report.TrainLoss, 0.1, 10);
        Assert.InRange(report.ValLoss, 0.1, 10);
        Assert.EndsWith("\n", Cli.Run("--steps", "1", "--samples", "1").Out);
    }

    [Fact]
    public void SampleNumbersAreRightAligned()
    {
        var r = Cli.Run("--steps", "5", "--samples", "12");
        var report = ParseText(r);
        Assert.Equal(Enumerable.Range(1, 12), report.Samples.Select(s => s.Number));
        var columns = report.Lines.Skip(4).Take(12).Select(l => l.IndexOf(" : ", StringComparison.Ordinal)).Distinct();
        Assert.Single(columns);
    }

    [Fact]
    public void JsonHasEveryField()
    {
        var json = ParseJson(Cli.Run("--steps", "20", "--samples", "7", "--json", "--seed", "5", "--batch-size", "16",
            "--context", "3", "--dim", "8", "--lr", "0.25", "--temperature", "0.8", "--top-k", "4"));

        Assert.Equal(JsonValueKind.Object, json.ValueKind);
        foreach (var field in new[] { "seconds", "examples_per_second", "train_loss", "val_loss", "startup_seconds" })
        {
            Assert.Equal(JsonValueKind.Number, json.GetProperty(field).ValueKind);
            Assert.True(json.GetProperty(field).GetDouble() >= 0, field);
        }
        Assert.Equal(20, json.GetProperty("steps").GetInt64());
        Assert.Equal(20 * 16, json.GetProperty("examples").GetInt64());
        Assert.InRange(json.GetProperty("alloc_bytes_per_step").GetInt64(), 0, 1 << 20);
        Assert.InRange(json.GetProperty("train_loss").GetDouble(), 0.1, 10);
        Assert.InRange(json.GetProperty("val_loss").GetDouble(), 0.1, 10);

        // the bundled names, counted here independently
        var lines = File.ReadAllLines(Path.Combine(TestData.AppFolder, "names.txt"))
            .Select(l => l.Trim().ToLowerInvariant()).Where(l => l.Length > 0).Distinct().ToList();
        Assert.Equal(lines.Count, json.GetProperty("names").GetInt32());
        Assert.Equal(lines.SelectMany(l => l.EnumerateRunes()).Distinct().Count() + 1, json.GetProperty("vocab_size").GetInt32());

        var samples = json.GetProperty("samples").EnumerateArray().ToList();
        Assert.Equal(7, samples.Count);
        foreach (var s in samples)
        {
            Assert.Equal(JsonValueKind.String, s.GetProperty("name").ValueKind);
            var inTraining = s.GetProperty("in_training");
            Assert.True(inTraining.ValueKind is JsonValueKind.True or JsonValueKind.False);
            if (inTraining.GetBoolean()) Assert.Contains(s.GetProperty("name").GetString(), lines);
        }

        var o = json.GetProperty("options");
        Assert.Equal("(bundled)", o.GetProperty("names_file").GetString());
        Assert.Equal(1.0, o.GetProperty("seconds").GetDouble());
        Assert.Equal(20, o.GetProperty("steps").GetInt64());
        Assert.Equal(7, o.GetProperty("samples").GetInt32());
        Assert.Equal(5, o.GetProperty("seed").GetInt64());
        Assert.Equal(16, o.GetProperty("batch_size").GetInt32());
        Assert.Equal(3, o.GetProperty("context").GetInt32());
        Assert.Equal(8, o.GetProperty("dim").GetInt32());
        Assert.Equal(0.25, o.GetProperty("lr").GetDouble(), 1e-6);
        Assert.Equal(0.8, o.GetProperty("temperature").GetDouble(), 1e-6);
        Assert.Equal(4, o.GetProperty("top_k").GetInt32());
        Assert.False(o.GetProperty("order_blind").GetBoolean());
    }

    [Fact]
    public void JsonDefaultsShowNullForUnsetStepsAndTopK()
    {
        var o = ParseJson(Cli.Run("--seconds", "0.01", "--samples", "1", "--json")).GetProperty("options");
        Assert.Equal(JsonValueKind.Null, o.GetProperty("steps").ValueKind);
        Assert.Equal(JsonValueKind.Null, o.GetProperty("top_k").ValueKind);
        Assert.Equal(0.01, o.GetProperty("seconds").GetDouble(), 1e-9);
        Assert.Equal(42, o.GetProperty("seed").GetInt64());
        Assert.Equal(512, o.GetProperty("batch_size").GetInt32());
        Assert.Equal(6, o.GetProperty("context").GetInt32());
        Assert.Equal(16, o.GetProperty("dim").GetInt32());
        Assert.Equal(0.1, o.GetProperty("lr").GetDouble(), 1e-6);
        Assert.Equal(1.0, o.GetProperty("temperature").GetDouble(), 1e-6);
    }

    [Fact]
    public void NamesFileIsUsed()
    {
        using var file = new TempFile(TestData.SyllableNamesFile);
        var json = ParseJson(Cli.Run("--names", file.Path, "--steps", "50", "--samples", "40", "--json"));

        Assert.Equal(150, json.GetProperty("names").GetInt32());
        Assert.Equal(16, json.GetProperty("vocab_size").GetInt32()); // b a d e k i l o m u n r s t v + boundary
        Assert.Equal(file.Path, json.GetProperty("options").GetProperty("names_file").GetString());
        foreach (var s in json.GetProperty("samples").EnumerateArray())
        {
            var name = s.GetProperty("name").GetString()!;
            Assert.All(name, c => Assert.Contains(c, "badekilomunrstv"));
            if (s.GetProperty("in_training").GetBoolean()) Assert.Contains(name, TestData.SyllableNames);
        }
    }

    [Fact]
    public void InTrainingMarksTrainingNamesInText()
    {
        // eight short names over two letters: after 200 steps the model reproduces some of the
        // seven it trained on, and only those may be marked
        using var file = new TempFile("ab\nba\nabab\nbaba\nabba\nbaab\naab\nbba\n");
        var report = ParseText(Cli.Run("--names", file.Path, "--steps", "200", "--samples", "30", "--context", "2"));
        var names = new[] { "ab", "ba", "abab", "baba", "abba", "baab", "aab", "bba" };
        foreach (var (_, name, inTraining) in report.Samples)
            if (inTraining) Assert.Contains(name, names);
        Assert.Contains(report.Samples, s => s.InTraining);
    }

    [Fact]
    public void SameSeedAndStepsGiveTheSameTextApartFromTiming()
    {
        string[] args = ["--steps", "30", "--samples", "10", "--seed", "123"];
        var a = ParseText(Cli.Run(args));
        var b = ParseText(Cli.Run(args));
        Assert.Equal(a.Lines.Skip(2), b.Lines.Skip(2)); // all but Elapsed and Steps
        Assert.StartsWith("Steps: 30 (", a.StepsLine);
        Assert.StartsWith("Steps: 30 (", b.StepsLine);
    }

    [Fact]
    public void SameSeedAndStepsGiveTheSameJsonApartFromTiming()
    {
        string[] args = ["--steps", "30", "--samples", "10", "--seed", "123", "--json"];
        var a = ParseJson(Cli.Run(args));
        var b = ParseJson(Cli.Run(args));
        // measurements of the run, not results: the allocation count includes one-time JIT work
        string[] timing = ["seconds", "examples_per_second", "startup_seconds", "alloc_bytes_per_step"];
        var fieldsA = a.EnumerateObject().Where(p => !timing.Contains(p.Name)).Select(p => (p.Name, p.Value.GetRawText())).ToList();
        var fieldsB = b.EnumerateObject().Where(p => !timing.Contains(p.Name)).Select(p => (p.Name, p.Value.GetRawText())).ToList();
        Assert.Equal(fieldsA, fieldsB);
        Assert.Equal(a.EnumerateObject().Select(p => p.Name), b.EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public void TextAndJsonAgree()
    {
        string[] args = ["--steps", "40", "--samples", "8", "--seed", "77"];
        var text = ParseText(Cli.Run(args));
        var json = ParseJson(Cli.Run([.. args, "--json"]));
        Assert.Equal(text.Samples.Select(s => (s.Name, s.InTraining)),
            json.GetProperty("samples").EnumerateArray().Select(s => (s.GetProperty("name").GetString()!, s.GetProperty("in_training").GetBoolean())));
        Assert.Equal(text.TrainLoss, json.GetProperty("train_loss").GetDouble(), 0.0005 + 1e-9);
        Assert.Equal(text.ValLoss, json.GetProperty("val_loss").GetDouble(), 0.0005 + 1e-9);
    }

    [Fact]
    public void DifferentSeedGivesDifferentSamples()
    {
        var a = ParseText(Cli.Run("--steps", "30", "--samples", "10", "--seed", "1"));
        var b = ParseText(Cli.Run("--steps", "30", "--samples", "10", "--seed", "2"));
        Assert.NotEqual(a.Samples.Select(s => s.Name), b.Samples.Select(s => s.Name));
    }

    [Fact]
    public void TopKOneOnTheCommandLineRepeatsOneName()
    {
        var report = ParseText(Cli.Run("--steps", "100", "--samples", "6", "--top-k", "1"));
        Assert.Single(report.Samples.Select(s => s.Name).Distinct());
    }

    [Fact]
    public void OrderBlindRuns()
    {
        var json = ParseJson(Cli.Run("--steps", "20", "--samples", "2", "--order-blind", "--json"));
        Assert.True(json.GetProperty("options").GetProperty("order_blind").GetBoolean());
        var positional = ParseJson(Cli.Run("--steps", "20", "--samples", "2", "--json"));
        Assert.NotEqual(positional.GetProperty("val_loss").GetDouble(), json.GetProperty("val_loss").GetDouble());
    }

    [Fact]
    public void HelpListsEveryOption()
    {
        var r = Cli.Run("--help");
        Assert.Equal(0, r.Code);
        Assert.Equal("", r.Err);
        foreach (var option in new[] { "--seconds", "--steps", "--samples", "--seed", "--names", "--batch-size", "--context",
                     "--dim", "--lr", "--temperature", "--top-k", "--order-blind", "--json", "--help" })
            Assert.Contains(option, r.Out);
    }

    // ---------------------------------------------------------------------------------------------
    // Accepted, if odd

    [Fact]
    public void ZeroSamples()
    {
        var report = ParseText(Cli.Run("--steps", "5", "--samples", "0"));
        Assert.Empty(report.Samples);
        Assert.Equal("Samples:", report.Lines[^2]);
        Assert.Empty(ParseJson(Cli.Run("--steps", "5", "--samples", "0", "--json")).GetProperty("samples").EnumerateArray());
    }

    [Fact]
    public void OneStep()
    {
        var report = ParseText(Cli.Run("--steps", "1", "--samples", "2"));
        Assert.StartsWith("Steps: 1 (", report.StepsLine);
        Assert.Equal(2, report.Samples.Count);
    }

    [Fact]
    public void CrlfAndBomFile()
    {
        var text = string.Join("\r\n", TestData.SyllableNames.Select(n => n.ToUpperInvariant())) + "\r\n";
        using var file = new TempFile(new byte[] { 0xEF, 0xBB, 0xBF }.Concat(TestData.Utf8(text)).ToArray());
        var json = ParseJson(Cli.Run("--names", file.Path, "--steps", "10", "--samples", "20", "--json"));
        Assert.Equal(150, json.GetProperty("names").GetInt32());
        Assert.Equal(16, json.GetProperty("vocab_size").GetInt32()); // no \r, no BOM, no capitals
        foreach (var s in json.GetProperty("samples").EnumerateArray())
            Assert.All(s.GetProperty("name").GetString()!, c => Assert.Contains(c, "badekilomunrstv"));
    }

    [Fact]
    public void TwoOneLetterNamesAreEnough()
    {
        using var file = new TempFile("a\nb\n");
        var json = ParseJson(Cli.Run("--names", file.Path, "--steps", "20", "--samples", "5", "--json"));
        Assert.Equal(2, json.GetProperty("names").GetInt32());
        Assert.Equal(3, json.GetProperty("vocab_size").GetInt32());
        foreach (var s in json.GetProperty("samples").EnumerateArray())
            Assert.All(s.GetProperty("name").GetString()!, c => Assert.Contains(c, "ab"));
    }

    [Theory]
    [InlineData("--seed", "-5")]
    [InlineData("--seed", "0")]
    [InlineData("--seed", "9223372036854775807")]
    [InlineData("--seed", "-9223372036854775808")]
    [InlineData("--batch-size", "1")]
    [InlineData("--context", "1")]
    [InlineData("--context", "16")]
    [InlineData("--dim", "1")]
    [InlineData("--dim", "17")]
    [InlineData("--lr", "0.000001")]
    [InlineData("--temperature", "0.001")]
    [InlineData("--temperature", "100")]
    [InlineData("--top-k", "1")]
    [InlineData("--top-k", "100000")]
    [InlineData("--seconds", "0.001")]
    public void BoundaryValuesAreAccepted(string option, string value)
    {
        var args = option == "--seconds" ? new[] { option, value, "--samples", "2" } : [option, value, "--steps", "3", "--samples", "2"];
        var report = ParseText(Cli.Run(args));
        Assert.Equal(2, report.Samples.Count);
    }

    [Fact]
    public void LargestAllowedBatchSizeRuns()
    {
        var json = ParseJson(Cli.Run("--batch-size", "65536", "--steps", "1", "--samples", "1", "--json"));
        Assert.Equal(65536, json.GetProperty("examples").GetInt64());
    }

    // ---------------------------------------------------------------------------------------------
    // Bad command lines: exit 2, one line on stderr, nothing on stdout

    public static TheoryData<string[]> BadCommandLines => new()
    {
        { ["--steps", "abc"] }, { ["--seconds", "abc"] }, { ["--samples", "x"] }, { ["--seed", "x"] },
        { ["--batch-size", "x"] }, { ["--context", "x"] }, { ["--dim", "x"] }, { ["--lr", "x"] },
        { ["--temperature", "x"] }, { ["--top-k", "x"] }, { ["--steps", ""] }, { ["--seed", "1.5"] }, { ["--steps", "2.5"] },
        { ["--batch-size", "0"] }, { ["--batch-size", "-3"] }, { ["--batch-size", "65537"] }, { ["--batch-size", "1000000"] },
        { ["--context", "0"] }, { ["--context", "17"] },
        { ["--dim", "0"] }, { ["--dim", "1025"] }, { ["--dim", "100000"] },
        { ["--seconds", "0"] }, { ["--seconds", "-1"] }, { ["--seconds", "NaN"] }, { ["--seconds", "1e9"] }, { ["--seconds", "Infinity"] },
        { ["--steps", "-1"] }, { ["--steps", "0"] }, { ["--steps", "1000000001"] },
        { ["--lr", "0"] }, { ["--lr", "NaN"] }, { ["--lr", "-1"] }, { ["--lr", "Infinity"] }, { ["--lr", "1e-50"] },
        { ["--temperature", "0"] }, { ["--temperature", "-1"] }, { ["--temperature", "NaN"] }, { ["--temperature", "101"] },
        { ["--top-k", "0"] }, { ["--top-k", "-1"] },
        { ["--samples", "-1"] }, { ["--samples", "100001"] },
        { ["--frobnicate"] }, { ["--steps"] }, { ["stray"] }, { ["--json", "yes-please"] },
    };

    [Theory]
    [MemberData(nameof(BadCommandLines))]
    public void BadCommandLineIsExitTwoWithOneErrorLine(string[] args)
    {
        var line = Cli.Run(args).AssertOneError(2);
        if (args.Length == 2 && args[0].StartsWith("--") && args[0] != "--json")
            Assert.Contains(args[0], line); // says which option
    }

    [Fact]
    public void BadValueMessageSaysWhatIsExpectedAndWhatWasGiven()
    {
        var line = Cli.Run("--lr", "-1").AssertOneError(2);
        Assert.Contains("--lr", line);
        Assert.Contains("-1", line);
        Assert.Contains("positive", line);
    }

    // Numbers above an option's maximum are rejected (exit 2, as they should be), but the message
    // states a requirement the rejected value meets: "--lr must be a positive number, got '2e6'",
    // "--top-k must be a whole number from 1 up, got '100001'".
    [Theory]
    [InlineData("--lr", "2e6", new[] { "1,000,000", "1000000", "1e6", "1E+06" })]
    [InlineData("--top-k", "100001", new[] { "100,000", "100000" })]
    public void TooLargeValueMessageNamesTheMaximum(string option, string value, string[] maximum)
    {
        var line = Cli.Run(option, value).AssertOneError(2);
        Assert.Contains(maximum, m => line.Contains(m));
    }

    [Fact]
    public void StepsAndSecondsTogetherAreRefused() =>
        Assert.Contains("--steps and --seconds", Cli.Run("--steps", "5", "--seconds", "2").AssertOneError(2));

    [Fact]
    public void UnknownOptionIsNamed() =>
        Assert.Contains("--frobnicate", Cli.Run("--steps", "5", "--frobnicate").AssertOneError(2));

    [Fact]
    public void SizesTooLargeForMemoryAreACommandLineError()
    {
        // each within its own range, together over the buffer limit
        var line = Cli.Run("--batch-size", "65536", "--context", "16", "--dim", "1024", "--steps", "1").AssertOneError(2);
        Assert.Contains("MB", line);
    }

    // ---------------------------------------------------------------------------------------------
    // Bad names files: exit 1, one line on stderr, nothing on stdout

    public static TheoryData<string, byte[]> BadFiles => new()
    {
        { "empty", [] },
        { "blank lines", TestData.Utf8("\n  \r\n\t\n") },
        { "one name", TestData.Utf8("Anna\nanna\n") },
        { "NUL byte", TestData.Utf8("anna\nbo\0b\n") },
        { "invalid UTF-8", [(byte)'a', 0xFE, (byte)'\n', (byte)'b', (byte)'o', (byte)'b'] },
        { "UTF-16", Encoding.Unicode.GetPreamble().Concat(Encoding.Unicode.GetBytes("anna\nbob\n")).ToArray() },
        { "overlong line", TestData.Utf8("anna\n" + new string('z', 51) + "\nbob\n") },
        { "huge vocabulary", TestData.Utf8(string.Join("\n", Enumerable.Range(0, 256).Select(i => (char)(0x4E00 + i)).Chunk(8).Select(c => new string(c)))) },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void BadNamesFileIsExitOneWithOneErrorLine(string what, byte[] bytes)
    {
        using var file = new TempFile(bytes);
        var line = Cli.Run("--names", file.Path, "--steps", "5").AssertOneError(1);
        if (what != "huge vocabulary") Assert.Contains(file.Path, line);
    }

    [Fact]
    public void MissingNamesFile()
    {
        var path = Path.Combine(Path.GetTempPath(), $"babynames-missing-{Guid.NewGuid():N}.txt");
        Assert.Contains(path, Cli.Run("--names", path, "--steps", "5").AssertOneError(1));
    }

    [Fact]
    public void DirectoryAsNamesFile()
    {
        using var dir = new TempDir();
        Assert.Contains(dir.Path, Cli.Run("--names", dir.Path, "--steps", "5").AssertOneError(1));
    }

    [Fact]
    public void NamesFileOverTheSizeLimit()
    {
        // a sparse file: 257 MB long, nothing written
        using var file = new TempFile(Array.Empty<byte>());
        using (var stream = new FileStream(file.Path, FileMode.Open, FileAccess.Write)) stream.SetLength(257L << 20);
        Assert.Contains("256 MB", Cli.Run("--names", file.Path, "--steps", "5").AssertOneError(1));
    }

    // System.CommandLine expands "@file" arguments as response files by default, so a names file
    // whose name starts with '@' is read as more command-line tokens: "--names @list.txt" fails
    // with "Unrecognized command or argument '<second name in the file>'" (exit 2).
    [Fact]
    public void NamesFileWhoseNameStartsWithAt()
    {
        // The argument itself must start with '@', so run from the file's folder. (No other test
        // depends on the current directory: they all use absolute paths.)
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "@names.txt"), TestData.SyllableNamesFile);
        var saved = Environment.CurrentDirectory;
        CliResult r;
        try
        {
            Environment.CurrentDirectory = dir.Path;
            r = Cli.Run("--names", "@names.txt", "--steps", "5", "--samples", "1", "--json");
        }
        finally { Environment.CurrentDirectory = saved; }
        Assert.Equal(150, ParseJson(r).GetProperty("names").GetInt32());
    }

    [Fact]
    public void BadNamesFileIsAlsoOneLineInJsonMode()
    {
        using var file = new TempFile(Array.Empty<byte>());
        Cli.Run("--names", file.Path, "--steps", "5", "--json").AssertOneError(1);
    }
}
