using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace BabyNames.Tests;

// The whole program through Program.Run, as a user sees it: successful runs, the report and its
// figures, bad command lines and bad names files, and output that cannot be written.

/// <summary>In-process runs with what Cli.Run leaves out: the Ctrl+C token, and the callback that
/// hears when training starts and ends.</summary>
internal static class InProcess
{
    public static CliResult Run(string[] args, CancellationToken stop = default, Action<bool>? training = null)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr, stop, training);
        return new(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>A run, and whether it started training at all.</summary>
    public static (CliResult Result, bool Trained) Watched(params string[] args)
    {
        bool trained = false;
        var r = Run(args, training: started => trained |= started);
        return (r, trained);
    }

    /// <summary>A usage or data error found before any training: one line, the exit code, and the
    /// training callback never called. Returns the line.</summary>
    public static string FailsBeforeTraining(int code, params string[] args)
    {
        var (r, trained) = Watched(args);
        string line = r.AssertOneError(code);
        Assert.False(trained, $"training started before the error: {line}");
        return line;
    }
}

/// <summary>The lines of a text report around the samples.</summary>
internal static class TextReport
{
    public static double Number(string text) => double.Parse(text, CultureInfo.InvariantCulture);

    /// <summary>A line that matches a pattern (anchored by the caller), and its match.</summary>
    public static Match Line(string[] lines, string pattern)
    {
        var regex = new Regex(pattern);
        var found = lines.Select(l => regex.Match(l)).Where(m => m.Success).ToList();
        Assert.True(found.Count == 1, $"expected one line matching {pattern}, found {found.Count} in:\n{string.Join("\n", lines)}");
        return found[0];
    }

    /// <summary>The distinct names of the bundled names.txt, read here independently: trimmed,
    /// lower-cased, blank lines left out (the file is plain NFC text).</summary>
    public static List<string> BundledNames() =>
        File.ReadAllLines(Path.Combine(TestData.AppFolder, "names.txt"))
            .Select(l => l.Trim().ToLowerInvariant()).Where(l => l.Length > 0).Distinct().ToList();
}

public class CommandLineTests
{
    static JsonElement Json(params string[] args)
    {
        var r = Cli.Run(args);
        r.AssertSuccess();
        return r.Json();
    }

    // ---------------------------------------------------------------------------------------------
    // Successful runs

    [Fact]
    public void DefaultRunPrintsTheWholeReport()
    {
        var r = Cli.Run("--steps", "20", "--samples", "5", "--threads", "1");
        r.AssertSuccess();
        var lines = r.OutLines;
        // with 20 steps only the final check measures the validation loss: the last step is kept
        Assert.Equal(5 + 5 + 2, lines.Length);
        Assert.Equal("Model: MLP, context 6, width 32, 128 hidden units", lines[0]);
        Assert.Matches(@"^Elapsed: \d+\.\d{3} seconds$", lines[1]);
        Assert.Matches(@"^Steps: 20 \(\d+\.\d\d M examples/s on 1 thread\)$", lines[2]);
        var loss = Regex.Match(lines[3], @"^Final loss: (\d+\.\d{3}) \(train\) (\d+\.\d{3}) \(validation\)$");
        Assert.True(loss.Success, lines[3]);
        Assert.InRange(TextReport.Number(loss.Groups[1].Value), 0.1, 10);
        Assert.InRange(TextReport.Number(loss.Groups[2].Value), 0.1, 10);
        Assert.Equal("Samples:", lines[4]);
        Assert.Equal(5, Output.TextSamples(r.Out).Count);
        Assert.Matches(@"^New names: \d+ of 5 \(\d+%\); mean length \d+\.\d letters \(the data's: \d+\.\d\)$", lines[^2]);
        Assert.Matches(@"^Validation loss: \d+\.\d{3} for this model, \d+\.\d{3} for a count bigram$", lines[^1]);
        Assert.EndsWith("\n", r.Out);
    }

    [Fact]
    public void ThreadsArePluralFromTwo()
    {
        var r = Cli.Run("--steps", "3", "--samples", "1", "--threads", "2");
        r.AssertSuccess();
        Assert.Matches(@"^Steps: 3 \(\d+\.\d\d M examples/s on 2 threads\)$", r.OutLines[2]);
    }

    [Fact]
    public void BagModelIsDescribed()
    {
        var r = Cli.Run("--steps", "3", "--samples", "1", "--model", "bag", "--context", "3", "--dim", "8");
        r.AssertSuccess();
        Assert.Equal("Model: bag of embeddings, context 3, width 8", r.OutLines[0]);
        var blind = Cli.Run("--steps", "3", "--samples", "1", "--model", "bag", "--order-blind");
        blind.AssertSuccess();
        Assert.Equal("Model: bag of embeddings (order-blind), context 6, width 16", blind.OutLines[0]);
    }

    [Fact]
    public void SampleNumbersAreRightAligned()
    {
        var r = Cli.Run("--steps", "5", "--samples", "12");
        r.AssertSuccess();
        Assert.Equal(12, Output.TextSamples(r.Out).Count); // numbered 1 to 12
        int first = Array.IndexOf(r.OutLines, "Samples:") + 1;
        var columns = r.OutLines.Skip(first).Take(12).Select(l => l.IndexOf(" : ", StringComparison.Ordinal)).Distinct();
        Assert.Single(columns);
    }

    [Fact]
    public void JsonHasEveryField()
    {
        var json = Json("--steps", "20", "--samples", "7", "--json", "--seed", "5", "--batch-size", "16",
            "--context", "3", "--dim", "8", "--hidden", "12", "--lr", "0.25", "--temperature", "0.8", "--top-k", "4", "--threads", "1");

        string[] fields =
        [
            "model", "seconds", "steps", "best_step", "examples", "examples_per_second", "threads", "macs_per_example",
            "train_loss", "val_loss", "bigram_val_loss", "diverged_at_step", "checks", "check_seconds",
            "alloc_bytes_per_step", "startup_seconds", "avx512", "stopped_early", "vocab_size", "names", "new_share",
            "mean_length", "data_mean_length", "samples", "saved", "error", "options",
        ];
        Assert.Equal(fields, json.EnumerateObject().Select(p => p.Name));
        Assert.Equal("mlp", json.GetProperty("model").GetString());
        foreach (var field in new[] { "seconds", "examples_per_second", "train_loss", "val_loss", "startup_seconds", "check_seconds" })
            Assert.True(json.GetProperty(field).GetDouble() >= 0, field);
        Assert.Equal(20, json.GetProperty("steps").GetInt64());
        Assert.InRange(json.GetProperty("best_step").GetInt64(), 1, 20);
        Assert.Equal(20 * 16, json.GetProperty("examples").GetInt64());
        Assert.Equal(1, json.GetProperty("threads").GetInt32());
        Assert.InRange(json.GetProperty("checks").GetInt32(), 1, 20);
        Assert.Equal(JsonValueKind.Null, json.GetProperty("diverged_at_step").ValueKind);
        Assert.Equal(JsonValueKind.Null, json.GetProperty("saved").ValueKind);
        Assert.Equal(JsonValueKind.Null, json.GetProperty("error").ValueKind);
        Assert.False(json.GetProperty("stopped_early").GetBoolean());
        Assert.Equal(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated, json.GetProperty("avx512").GetBoolean());
        Assert.InRange(json.GetProperty("alloc_bytes_per_step").GetInt64(), 0, 1 << 20);
        Assert.InRange(json.GetProperty("train_loss").GetDouble(), 0.1, 10);
        Assert.InRange(json.GetProperty("val_loss").GetDouble(), 0.1, 10);

        // the bundled names, counted here independently
        var names = TextReport.BundledNames();
        Assert.Equal(names.Count, json.GetProperty("names").GetInt32());
        int V = names.SelectMany(l => l.EnumerateRunes()).Distinct().Count() + 1;
        Assert.Equal(V, json.GetProperty("vocab_size").GetInt32());
        // the MLP with B = 16 < V computes its first layer per example: K·D·H + H·V multiply-adds
        // forward, and three products in all (forward, and two backward)
        Assert.Equal(3.0 * (3 * 8 * 12 + 12 * V), json.GetProperty("macs_per_example").GetDouble(), 1e-9);

        var samples = Output.JsonSamples(json);
        Assert.Equal(7, samples.Count);
        foreach (var (name, inTraining) in samples)
            if (inTraining) Assert.Contains(name, names);

        var o = json.GetProperty("options");
        string[] options =
        [
            "names_file", "model", "seconds", "steps", "samples", "seed", "batch_size", "context", "dim", "hidden", "lr",
            "threads", "order_blind", "temperature", "top_k", "prefix", "min_length", "max_length", "unique", "new_only",
            "save", "load", "score_file", "sort",
        ];
        Assert.Equal(options, o.EnumerateObject().Select(p => p.Name));
        Assert.Equal("(bundled)", o.GetProperty("names_file").GetString());
        Assert.Equal("mlp", o.GetProperty("model").GetString());
        Assert.Equal(1.0, o.GetProperty("seconds").GetDouble());
        Assert.Equal(20, o.GetProperty("steps").GetInt64());
        Assert.Equal(7, o.GetProperty("samples").GetInt32());
        Assert.Equal(5, o.GetProperty("seed").GetInt64());
        Assert.Equal(16, o.GetProperty("batch_size").GetInt32());
        Assert.Equal(3, o.GetProperty("context").GetInt32());
        Assert.Equal(8, o.GetProperty("dim").GetInt32());
        Assert.Equal(12, o.GetProperty("hidden").GetInt32());
        Assert.Equal(0.25, o.GetProperty("lr").GetDouble(), 1e-6);
        Assert.Equal(1, o.GetProperty("threads").GetInt32());
        Assert.Equal(0.8, o.GetProperty("temperature").GetDouble(), 1e-6);
        Assert.Equal(4, o.GetProperty("top_k").GetInt32());
        Assert.False(o.GetProperty("order_blind").GetBoolean());
        Assert.False(o.GetProperty("sort").GetBoolean());
        foreach (var unset in new[] { "save", "load", "score_file" }) Assert.Equal(JsonValueKind.Null, o.GetProperty(unset).ValueKind);
    }

    [Fact]
    public void JsonOfTheBagHasNoHiddenUnits()
    {
        var json = Json("--steps", "5", "--samples", "1", "--json", "--model", "bag", "--batch-size", "64", "--dim", "8");
        Assert.Equal("bag", json.GetProperty("model").GetString());
        var o = json.GetProperty("options");
        Assert.Equal("bag", o.GetProperty("model").GetString());
        Assert.Equal(JsonValueKind.Null, o.GetProperty("hidden").ValueKind);
        // the bag: one matmul of D·V, three products
        Assert.Equal(3.0 * 8 * json.GetProperty("vocab_size").GetInt32(), json.GetProperty("macs_per_example").GetDouble(), 1e-9);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void JsonOfTheMlpWithATableCountsTheTableOncePerBatchOnEachThread(int threads)
    {
        // B = 256 > V: the first layer is a table of K·V rows made once a step on every thread
        // (each trains its own copy of the model), K·V·D·H multiply-adds each, shared by the
        // batch; then H·V per example
        var json = Json("--steps", "5", "--samples", "1", "--json", "--batch-size", "256", "--context", "4", "--dim", "8", "--hidden", "32",
            "--threads", threads.ToString());
        int V = json.GetProperty("vocab_size").GetInt32();
        Assert.True(256 > V);
        Assert.Equal(threads, json.GetProperty("threads").GetInt32());
        Assert.Equal(3.0 * (4.0 * V * 8 * 32 * threads / 256 + 32 * V), json.GetProperty("macs_per_example").GetDouble(), 0.05 + 1e-9);
    }

    [Fact]
    public void JsonDefaults()
    {
        var o = Json("--seconds", "0.01", "--samples", "1", "--json").GetProperty("options");
        Assert.Equal(JsonValueKind.Null, o.GetProperty("steps").ValueKind);
        Assert.Equal(JsonValueKind.Null, o.GetProperty("top_k").ValueKind);
        Assert.Equal(0.01, o.GetProperty("seconds").GetDouble(), 1e-9);
        Assert.Equal("mlp", o.GetProperty("model").GetString());
        Assert.Equal(42, o.GetProperty("seed").GetInt64());
        Assert.Equal(512, o.GetProperty("batch_size").GetInt32());
        Assert.Equal(6, o.GetProperty("context").GetInt32());
        Assert.Equal(32, o.GetProperty("dim").GetInt32());
        Assert.Equal(128, o.GetProperty("hidden").GetInt32());
        Assert.Equal(1.0, o.GetProperty("lr").GetDouble(), 1e-6);
        Assert.Equal(Environment.ProcessorCount, o.GetProperty("threads").GetInt32()); // every core
        Assert.Equal(1.0, o.GetProperty("temperature").GetDouble(), 1e-6);
        Assert.Equal("", o.GetProperty("prefix").GetString());
        Assert.Equal(1, o.GetProperty("min_length").GetInt32());
        Assert.Equal(50, o.GetProperty("max_length").GetInt32());
        Assert.False(o.GetProperty("unique").GetBoolean());
        Assert.False(o.GetProperty("new_only").GetBoolean());
    }

    [Fact]
    public void NamesFileIsUsed()
    {
        using var file = new TempFile(TestData.SyllableNamesFile);
        var json = Json("--names", file.Path, "--steps", "50", "--samples", "40", "--json");
        Assert.Equal(150, json.GetProperty("names").GetInt32());
        Assert.Equal(16, json.GetProperty("vocab_size").GetInt32()); // a b d e i k l m n o r s t u v + boundary
        Assert.Equal(file.Path, json.GetProperty("options").GetProperty("names_file").GetString());
        foreach (var (name, inTraining) in Output.JsonSamples(json))
        {
            Assert.All(name, c => Assert.Contains(c, "abdeiklmnorstuv"));
            if (inTraining) Assert.Contains(name, TestData.SyllableNames);
        }
    }

    [Fact]
    public void NamesFromStandardInput()
    {
        // the built app: "-" reads the process's standard input
        var r = App.Run(["--names", "-", "--steps", "5", "--samples", "3", "--json"], input: TestData.SyllableNamesFile);
        var json = r.Json();
        Assert.Equal("", r.Err);
        Assert.Equal(150, json.GetProperty("names").GetInt32());
        Assert.Equal(16, json.GetProperty("vocab_size").GetInt32());
        Assert.Equal("-", json.GetProperty("options").GetProperty("names_file").GetString());
        // and bad input is named as standard input
        var bad = App.Run(["--names", "-", "--steps", "5"], input: "anna\n");
        Assert.Contains("standard input", bad.AssertOneError(1));
    }

    [Fact]
    public void InTrainingMarksTrainingNamesInText()
    {
        // eight short names over two letters: after 500 steps the model, sampled at a low
        // temperature, reproduces some of the seven it trained on, and only those may be marked
        using var file = new TempFile("ab\nba\nabab\nbaba\nabba\nbaab\naab\nbba\n");
        var r = Cli.Run("--names", file.Path, "--steps", "500", "--samples", "30", "--context", "2", "--temperature", "0.5");
        r.AssertSuccess();
        var samples = Output.TextSamples(r.Out);
        string[] names = ["ab", "ba", "abab", "baba", "abba", "baab", "aab", "bba"];
        foreach (var (name, inTraining) in samples)
            if (inTraining) Assert.Contains(name, names);
        Assert.Contains(samples, s => s.InTraining);
    }

    [Fact]
    public void SameSeedAndStepsGiveTheSameTextApartFromTiming()
    {
        string[] args = ["--steps", "30", "--samples", "10", "--seed", "123"];
        var a = Cli.Run(args);
        var b = Cli.Run(args);
        a.AssertSuccess();
        b.AssertSuccess();
        // all but the Elapsed and Steps lines, which hold the time and the speed
        static IEnumerable<string> Results(CliResult r) => r.OutLines.Where(l => !l.StartsWith("Elapsed: ") && !l.StartsWith("Steps: "));
        Assert.Equal(Results(a), Results(b));
        Assert.Equal(a.OutLines.Length - 2, Results(a).Count());
        Assert.StartsWith("Steps: 30 (", a.OutLines[2]);
        Assert.StartsWith("Steps: 30 (", b.OutLines[2]);
    }

    [Fact]
    public void SameSeedAndStepsGiveTheSameJsonApartFromTiming()
    {
        string[] args = ["--steps", "30", "--samples", "10", "--seed", "123", "--json"];
        var a = Json(args);
        var b = Json(args);
        // measurements of the run, not results (the allocation count includes one-time JIT work)
        string[] timing = ["seconds", "examples_per_second", "startup_seconds", "alloc_bytes_per_step", "check_seconds"];
        var fieldsA = a.EnumerateObject().Where(p => !timing.Contains(p.Name)).Select(p => (p.Name, p.Value.GetRawText())).ToList();
        var fieldsB = b.EnumerateObject().Where(p => !timing.Contains(p.Name)).Select(p => (p.Name, p.Value.GetRawText())).ToList();
        Assert.Equal(fieldsA, fieldsB);
        Assert.Equal(a.EnumerateObject().Select(p => p.Name), b.EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public void TheNumberOfThreadsDoesNotChangeTheResult()
    {
        string[] args = ["--steps", "30", "--samples", "10", "--seed", "8", "--json"];
        var one = Json([.. args, "--threads", "1"]);
        var two = Json([.. args, "--threads", "2"]);
        Assert.Equal(1, one.GetProperty("threads").GetInt32());
        Assert.Equal(2, two.GetProperty("threads").GetInt32());
        Assert.Equal(one.GetProperty("val_loss").GetDouble(), two.GetProperty("val_loss").GetDouble());
        Assert.Equal(Output.JsonSamples(one), Output.JsonSamples(two));
    }

    [Fact]
    public void TextAndJsonAgree()
    {
        string[] args = ["--steps", "40", "--samples", "8", "--seed", "77"];
        var text = Cli.Run(args);
        text.AssertSuccess();
        var json = Json([.. args, "--json"]);
        Assert.Equal(Output.TextSamples(text.Out), Output.JsonSamples(json));
        var loss = TextReport.Line(text.OutLines, @"^Final loss: (\d+\.\d{3}) \(train\) (\d+\.\d{3}) \(validation\)$");
        Assert.Equal(TextReport.Number(loss.Groups[1].Value), json.GetProperty("train_loss").GetDouble(), 0.0005 + 1e-9);
        Assert.Equal(TextReport.Number(loss.Groups[2].Value), json.GetProperty("val_loss").GetDouble(), 0.0005 + 1e-9);
    }

    [Fact]
    public void DifferentSeedGivesDifferentSamples()
    {
        var a = Json("--steps", "30", "--samples", "10", "--seed", "1", "--json");
        var b = Json("--steps", "30", "--samples", "10", "--seed", "2", "--json");
        Assert.NotEqual(Output.JsonSamples(a), Output.JsonSamples(b));
    }

    [Fact]
    public void TopKOneOnTheCommandLineRepeatsOneName()
    {
        var samples = Output.JsonSamples(Json("--steps", "100", "--samples", "6", "--top-k", "1", "--json"));
        Assert.Equal(6, samples.Count);
        Assert.Single(samples.Select(s => s.Name).Distinct());
    }

    [Fact]
    public void OrderBlindBagRuns()
    {
        var blind = Json("--steps", "20", "--samples", "2", "--model", "bag", "--order-blind", "--json");
        Assert.True(blind.GetProperty("options").GetProperty("order_blind").GetBoolean());
        var positional = Json("--steps", "20", "--samples", "2", "--model", "bag", "--json");
        Assert.False(positional.GetProperty("options").GetProperty("order_blind").GetBoolean());
        Assert.NotEqual(positional.GetProperty("val_loss").GetDouble(), blind.GetProperty("val_loss").GetDouble());
    }

    // ---------------------------------------------------------------------------------------------
    // Help

    /// <summary>Every option of the program, written out here: its placeholder (null for a
    /// switch) and, for the numbers with a range, how the help states the range.</summary>
    static readonly (string Option, string? Value, string? Range)[] EveryOption =
    [
        ("--seconds", "S", "0.001 to 3,600"), ("--steps", "N", "1 to 1,000,000,000"), ("--samples", "N", "0 to 100,000"),
        ("--seed", "N", null), ("--names", "FILE", null), ("--model", "mlp|bag", null), ("--batch-size", "B", "1 to 65,536"),
        ("--context", "K", "1 to 16"), ("--dim", "D", "1 to 1,024"), ("--hidden", "H", "1 to 1,024"),
        ("--lr", "R", "1,000,000"), ("--threads", "N", "1 to 256"), ("--order-blind", null, null),
        ("--temperature", "T", "0.001 to 100"), ("--top-k", "N", "1 to 100,000"), ("--prefix", "TEXT", null),
        ("--min-length", "N", "1 to 50"), ("--max-length", "N", "1 to 50"), ("--unique", null, null), ("--new-only", null, null),
        ("--save", "FILE", null), ("--load", "FILE", null), ("--score", "NAME...", null), ("--score-file", "FILE", null),
        ("--sort", null, null), ("--json", null, null), ("--help", null, null), ("--version", null, null),
    ];

    static string[] HelpLines()
    {
        var r = Cli.Run("--help");
        Assert.Equal(0, r.Code);
        Assert.Equal("", r.Err);
        return r.OutLines;
    }

    /// <summary>The help line of an option: "  [-x, ]--option [&lt;VALUE&gt;]  description".</summary>
    static string HelpLine(string[] lines, string option)
    {
        var regex = new Regex(@"^\s+(-\S+, )*" + Regex.Escape(option) + @"(\s|$)");
        var found = lines.Where(l => regex.IsMatch(l)).ToList();
        Assert.True(found.Count == 1, $"{option}: {found.Count} help lines");
        return found[0];
    }

    [Fact]
    public void HelpListsEveryOptionAndNoOther()
    {
        var lines = HelpLines();
        foreach (var (option, _, _) in EveryOption) HelpLine(lines, option);
        // and every option the help lists is one of those
        var listed = lines.Select(l => Regex.Match(l, @"^\s+((?:-[-\w?]+, )*)(--[\w-]+)")).Where(m => m.Success).Select(m => m.Groups[2].Value).ToList();
        Assert.Equal(EveryOption.Select(o => o.Option).Order(StringComparer.Ordinal), listed.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void HelpShowsWhatEachValueIs()
    {
        var lines = HelpLines();
        foreach (var (option, value, _) in EveryOption)
        {
            var line = HelpLine(lines, option);
            var shown = Regex.Match(line, Regex.Escape(option) + @" <([^>]*)>");
            if (value is null) Assert.False(shown.Success, line);
            else Assert.True(shown.Success && shown.Groups[1].Value == value, $"expected <{value}>: {line}");
        }
    }

    [Fact]
    public void HelpShowsTheRanges()
    {
        var lines = HelpLines();
        var missing = EveryOption.Where(o => o.Range is not null && !HelpLine(lines, o.Option).Contains(o.Range!))
            .Select(o => $"{o.Option} ({o.Range})").ToList();
        Assert.True(missing.Count == 0, "help lines without their range: " + string.Join(", ", missing));
    }

    // ---------------------------------------------------------------------------------------------
    // Accepted, if odd

    [Fact]
    public void ZeroSamplesPrintsNoSamplesHeader()
    {
        var r = Cli.Run("--steps", "5", "--samples", "0");
        r.AssertSuccess();
        Assert.DoesNotContain("Samples:", r.OutLines);
        Assert.DoesNotContain(r.OutLines, l => l.StartsWith("New names: "));
        Assert.StartsWith("Final loss: ", r.OutLines[^2]);
        Assert.StartsWith("Validation loss: ", r.OutLines[^1]);
        Assert.Empty(Output.JsonSamples(Json("--steps", "5", "--samples", "0", "--json")));
    }

    [Fact]
    public void OneStep()
    {
        var r = Cli.Run("--steps", "1", "--samples", "2");
        r.AssertSuccess();
        Assert.StartsWith("Steps: 1 (", r.OutLines[2]);
        Assert.Equal(2, Output.TextSamples(r.Out).Count);
    }

    [Fact]
    public void CrlfAndBomFile()
    {
        var text = string.Join("\r\n", TestData.SyllableNames.Select(n => n.ToUpperInvariant())) + "\r\n";
        using var file = new TempFile([0xEF, 0xBB, 0xBF, .. TestData.Utf8(text)]);
        var json = Json("--names", file.Path, "--steps", "10", "--samples", "20", "--json");
        Assert.Equal(150, json.GetProperty("names").GetInt32());
        Assert.Equal(16, json.GetProperty("vocab_size").GetInt32()); // no \r, no BOM, no capitals
        foreach (var (name, _) in Output.JsonSamples(json)) Assert.All(name, c => Assert.Contains(c, "abdeiklmnorstuv"));
    }

    [Fact]
    public void TwoOneLetterNamesAreEnough()
    {
        using var file = new TempFile("a\nb\n");
        var json = Json("--names", file.Path, "--steps", "20", "--samples", "5", "--json");
        Assert.Equal(2, json.GetProperty("names").GetInt32());
        Assert.Equal(3, json.GetProperty("vocab_size").GetInt32());
        foreach (var (name, _) in Output.JsonSamples(json)) Assert.All(name, c => Assert.Contains(c, "ab"));
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
    [InlineData("--hidden", "1")]
    [InlineData("--hidden", "1024")]
    [InlineData("--threads", "1")]
    [InlineData("--threads", "256")]
    [InlineData("--model", "bag")]
    [InlineData("--model", "mlp")]
    [InlineData("--lr", "0.000001")]
    [InlineData("--temperature", "0.001")]
    [InlineData("--temperature", "100")]
    [InlineData("--top-k", "1")]
    [InlineData("--top-k", "100000")]
    [InlineData("--min-length", "1")]
    [InlineData("--max-length", "50")]
    [InlineData("--seconds", "0.001")]
    public void BoundaryValuesAreAccepted(string option, string value)
    {
        // the value is taken and the run trains; a model of 3 steps may not end names yet, so
        // sampling is left to the sampling tests
        string[] args = option == "--seconds" ? [option, value, "--samples", "0", "--json"] : [option, value, "--steps", "3", "--samples", "0", "--json"];
        var r = Cli.Run(args);
        r.AssertSuccess();
        var json = r.Json();
        Assert.True(json.GetProperty("steps").GetInt64() >= 1);
        Assert.True(double.IsFinite(json.GetProperty("val_loss").GetDouble()));
    }

    [Fact]
    public void LargestAllowedBatchSizeRuns()
    {
        var json = Json("--batch-size", "65536", "--steps", "1", "--samples", "1", "--json");
        Assert.Equal(65536, json.GetProperty("examples").GetInt64());
    }

    // ---------------------------------------------------------------------------------------------
    // Bad command lines: exit 2, one line on stderr, nothing on stdout

    public static TheoryData<string[]> BadCommandLines => new()
    {
        { ["--steps", "abc"] }, { ["--seconds", "abc"] }, { ["--samples", "x"] }, { ["--seed", "x"] },
        { ["--batch-size", "x"] }, { ["--context", "x"] }, { ["--dim", "x"] }, { ["--hidden", "x"] }, { ["--lr", "x"] },
        { ["--threads", "x"] }, { ["--temperature", "x"] }, { ["--top-k", "x"] }, { ["--model", "x"] },
        { ["--min-length", "x"] }, { ["--max-length", "x"] }, { ["--steps", ""] }, { ["--seed", "1.5"] }, { ["--steps", "2.5"] },
        { ["--seed", "9223372036854775808"] },
        { ["--batch-size", "0"] }, { ["--batch-size", "-3"] }, { ["--batch-size", "65537"] }, { ["--batch-size", "1000000"] },
        { ["--context", "0"] }, { ["--context", "17"] },
        { ["--dim", "0"] }, { ["--dim", "1025"] }, { ["--dim", "100000"] },
        { ["--hidden", "0"] }, { ["--hidden", "1025"] }, { ["--threads", "0"] }, { ["--threads", "257"] },
        { ["--seconds", "0"] }, { ["--seconds", "-1"] }, { ["--seconds", "NaN"] }, { ["--seconds", "1e9"] }, { ["--seconds", "Infinity"] },
        { ["--steps", "-1"] }, { ["--steps", "0"] }, { ["--steps", "1000000001"] },
        { ["--lr", "0"] }, { ["--lr", "NaN"] }, { ["--lr", "-1"] }, { ["--lr", "Infinity"] }, { ["--lr", "1e-50"] },
        { ["--temperature", "0"] }, { ["--temperature", "-1"] }, { ["--temperature", "NaN"] }, { ["--temperature", "101"] },
        { ["--top-k", "0"] }, { ["--top-k", "-1"] }, { ["--top-k", "100001"] },
        { ["--min-length", "0"] }, { ["--min-length", "51"] }, { ["--max-length", "0"] }, { ["--max-length", "51"] },
        { ["--samples", "-1"] }, { ["--samples", "100001"] },
        { ["--frobnicate"] }, { ["--steps"] }, { ["stray"] }, { ["--json", "yes-please"] },
    };

    [Theory]
    [MemberData(nameof(BadCommandLines))]
    public void BadCommandLineIsExitTwoWithOneErrorLine(string[] args)
    {
        var line = InProcess.FailsBeforeTraining(2, args);
        Assert.EndsWith(" (see --help)", line);
        if (args[0] != "--json") Assert.Contains(args[0], line); // says which option, or which word
    }

    [Fact]
    public void BadValueMessageSaysWhatIsExpectedAndWhatWasGiven() =>
        Assert.Equal("error: --lr must be a positive number up to 1,000,000, got '-1' (see --help)", Cli.Run("--lr", "-1").AssertOneError(2));

    [Theory]
    [InlineData("--lr", "2e6", "1,000,000")]
    [InlineData("--top-k", "100001", "100,000")]
    [InlineData("--hidden", "1025", "1,024")]
    [InlineData("--threads", "257", "256")]
    public void TooLargeValueMessageNamesTheMaximum(string option, string value, string maximum)
    {
        var line = Cli.Run(option, value).AssertOneError(2);
        Assert.Contains(maximum, line);
        Assert.Contains($"'{value}'", line);
    }

    [Fact]
    public void ParserErrorsReadLikeTheProgramsOwn()
    {
        Assert.Equal("error: unknown option '--bogus' (see --help)", Cli.Run("--bogus").AssertOneError(2));
        Assert.Equal("error: unknown option '--bogus' (see --help)", Cli.Run("--steps", "5", "--bogus").AssertOneError(2));
        Assert.Equal("error: unexpected argument 'stray' (see --help)", Cli.Run("--steps", "5", "stray").AssertOneError(2));
        Assert.Equal("error: --model must be mlp or bag, got 'tree' (see --help)", Cli.Run("--model", "tree").AssertOneError(2));
    }

    [Theory]
    [InlineData(new[] { "--save", "--json" }, "--save needs a value")]
    [InlineData(new[] { "--prefix", "--unique" }, "--prefix needs a value")]
    [InlineData(new[] { "--seed", "--steps", "1" }, "--seed needs a value")]
    [InlineData(new[] { "--load", "--samples", "3" }, "--load needs a value")]
    [InlineData(new[] { "--names", "--steps", "5" }, "--names needs a value")]
    [InlineData(new[] { "--score-file", "--json" }, "--score-file needs a value")]
    [InlineData(new[] { "--score", "--sort" }, "--score needs a value")]
    [InlineData(new[] { "--steps", "5", "--names" }, "--names needs a value")]
    public void AnOptionMissingItsValueIsAUsageError(string[] args, string expected)
    {
        var line = InProcess.FailsBeforeTraining(2, args);
        Assert.StartsWith("error: " + expected, line);
        // never taken as a file called like the next option
        Assert.False(File.Exists(args[1]), $"a file named {args[1]} was made");
    }

    [Fact]
    public void StepsAndSecondsTogetherAreRefused() =>
        Assert.Contains("--steps and --seconds", InProcess.FailsBeforeTraining(2, "--steps", "5", "--seconds", "2"));

    [Theory]
    [InlineData("--order-blind")]
    [InlineData("--order-blind --model mlp")]
    public void OrderBlindWithTheMlpIsAUsageError(string args)
    {
        var line = InProcess.FailsBeforeTraining(2, [.. args.Split(' '), "--steps", "5"]);
        Assert.Contains("--order-blind", line);
        Assert.Contains("--model bag", line);
    }

    [Fact]
    public void HiddenWithTheBagIsAUsageError()
    {
        var line = InProcess.FailsBeforeTraining(2, "--model", "bag", "--hidden", "8", "--steps", "5");
        Assert.Contains("--hidden", line);
        Assert.Contains("bag", line);
    }

    [Fact]
    public void SizesTooLargeForMemoryAreACommandLineError()
    {
        // each within its own range, together over the buffer limit
        var line = InProcess.FailsBeforeTraining(2, "--batch-size", "65536", "--context", "16", "--dim", "1024", "--model", "bag", "--steps", "1");
        Assert.Contains("MB", line);
    }

    [Theory]
    [InlineData("--save", "")]
    [InlineData("--load", "")]
    [InlineData("--names", "")]
    [InlineData("--score-file", "")]
    [InlineData("--save", " ")]
    [InlineData("--names", "\t")]
    public void AnEmptyFileNameIsABadCommandLine(string option, string value) =>
        Assert.Contains(option + " needs a file name", InProcess.FailsBeforeTraining(2, option, value));

    // ---------------------------------------------------------------------------------------------
    // Bad names files: exit 1, one line on stderr, nothing on stdout

    public static TheoryData<string, byte[]> BadFiles => new()
    {
        { "empty", [] },
        { "blank lines", TestData.Utf8("\n  \r\n\t\n") },
        { "one name", TestData.Utf8("Anna\nanna\n") },
        { "NUL byte", TestData.Utf8("anna\nbo\0b\n") },
        { "invalid UTF-8", [(byte)'a', 0xFE, (byte)'\n', (byte)'b', (byte)'o', (byte)'b'] },
        { "UTF-16", [.. Encoding.Unicode.GetPreamble(), .. Encoding.Unicode.GetBytes("anna\nbob\n")] },
        { "overlong line", TestData.Utf8("anna\n" + new string('z', 51) + "\nbob\n") },
        { "huge vocabulary", TestData.Utf8(string.Join("\n", Enumerable.Range(0, 256).Select(i => (char)(0x4E00 + i)).Chunk(8).Select(c => new string(c)))) },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void BadNamesFileIsExitOneWithOneErrorLine(string what, byte[] bytes)
    {
        using var file = new TempFile(bytes);
        var line = InProcess.FailsBeforeTraining(1, "--names", file.Path, "--steps", "5");
        if (what != "huge vocabulary") Assert.Contains(file.Path, line);
        Cli.Run("--names", file.Path, "--steps", "5", "--json").AssertOneError(1);
    }

    [Fact]
    public void MissingNamesFile()
    {
        var path = Path.Combine(Path.GetTempPath(), $"babynames-missing-{Guid.NewGuid():N}.txt");
        Assert.Contains(path, InProcess.FailsBeforeTraining(1, "--names", path, "--steps", "5"));
    }

    [Fact]
    public void NamesFileInAMissingFolderNamesTheFolder()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "missing", "names.txt");
        var line = InProcess.FailsBeforeTraining(1, "--names", path, "--steps", "5");
        Assert.Contains(Path.Combine(dir.Path, "missing"), line);
    }

    [Fact]
    public void FolderAsNamesFile()
    {
        using var dir = new TempDir();
        var line = InProcess.FailsBeforeTraining(1, "--names", dir.Path, "--steps", "5");
        Assert.Contains(dir.Path, line);
        Assert.Contains("folder", line);
    }

    [Fact]
    public void NamesFileOverTheSizeLimit()
    {
        // a sparse file: 257 MB long, nothing written
        using var file = new TempFile(Array.Empty<byte>());
        using (var stream = new FileStream(file.Path, FileMode.Open, FileAccess.Write)) stream.SetLength(257L << 20);
        Assert.Contains("256 MB", InProcess.FailsBeforeTraining(1, "--names", file.Path, "--steps", "5"));
    }

    [Fact]
    public void NamesFileWhoseNameStartsWithAt()
    {
        // not a response file: "--names @names.txt" is the file called @names.txt. The argument
        // itself must start with '@', so run from the file's folder (no other test depends on the
        // current folder: they all give full paths).
        using var dir = new TempDir();
        File.WriteAllText(dir.File("@names.txt"), TestData.SyllableNamesFile);
        var saved = Environment.CurrentDirectory;
        CliResult r;
        try
        {
            Environment.CurrentDirectory = dir.Path;
            r = Cli.Run("--names", "@names.txt", "--steps", "5", "--samples", "1", "--json");
        }
        finally { Environment.CurrentDirectory = saved; }
        Assert.Equal(150, r.Json().GetProperty("names").GetInt32());
    }
}

/// <summary>The figures of the report: what they count, in text and in JSON.</summary>
public class ReportTests
{
    /// <summary>150 made-up names from ten syllables, one of which has a letter outside the Basic
    /// Multilingual Plane (two UTF-16 units, one code point): lengths in code points and in UTF-16
    /// units differ for about a fifth of them.</summary>
    internal static readonly string[] ClefNames = TestData.MakeSyllableNames("\U0001D11Eo");

    // duplicates (after trimming and lower-casing) and blank lines that the figures must not count
    static readonly string NamesText = string.Join("\n", [.. ClefNames, "BABA", "  deki ", "", "Ki\U0001D11Eo", "LOLO"]) + "\n";

    static double DataMeanLength()
    {
        var distinct = NamesText.Split('\n').Select(l => l.Trim().ToLowerInvariant()).Where(l => l.Length > 0).Distinct().ToList();
        Assert.Equal(150, distinct.Count);
        return distinct.Average(n => n.EnumerateRunes().Count());
    }

    [Fact]
    public void JsonFiguresMatchTheSamples()
    {
        using var file = new TempFile(NamesText);
        var r = Cli.Run("--names", file.Path, "--steps", "120", "--samples", "60", "--seed", "8", "--json");
        var json = r.Json();
        var samples = Output.JsonSamples(json);
        Assert.Equal(60, samples.Count);
        // the figures below are only meaningful if both kinds of sample occur
        Assert.Contains(samples, s => s.InTraining);
        Assert.Contains(samples, s => !s.InTraining);
        Assert.Contains(samples, s => s.Name.Length != s.Name.EnumerateRunes().Count());

        Assert.Equal(150, json.GetProperty("names").GetInt32());
        Assert.Equal(samples.Count(s => !s.InTraining) / 60.0, json.GetProperty("new_share").GetDouble(), 1e-12);
        Assert.Equal(samples.Average(s => s.Name.EnumerateRunes().Count()), json.GetProperty("mean_length").GetDouble(), 1e-9);
        Assert.Equal(DataMeanLength(), json.GetProperty("data_mean_length").GetDouble(), 1e-9);
        double bigram = json.GetProperty("bigram_val_loss").GetDouble();
        Assert.True(double.IsFinite(bigram) && bigram > 0, $"bigram_val_loss {bigram}");
        Assert.True(bigram < Math.Log(json.GetProperty("vocab_size").GetInt32()), "the bigram is no better than guessing");
    }

    [Fact]
    public void FiguresWithNoSamples()
    {
        var json = Cli.Run("--steps", "5", "--samples", "0", "--json").Json();
        Assert.Equal(0, json.GetProperty("new_share").GetDouble());
        Assert.Equal(0, json.GetProperty("mean_length").GetDouble());
        Assert.True(json.GetProperty("data_mean_length").GetDouble() > 1);
    }

    [Fact]
    public void TextSummaryLinesAgreeWithJson()
    {
        using var file = new TempFile(NamesText);
        string[] args = ["--names", file.Path, "--steps", "120", "--samples", "60", "--seed", "8"];
        var text = Cli.Run(args);
        text.AssertSuccess();
        var json = Cli.Run([.. args, "--json"]).Json();
        Assert.Equal(Output.JsonSamples(json), Output.TextSamples(text.Out));

        var lines = text.OutLines;
        var newNames = Regex.Match(lines[^2], @"^New names: (\d+) of (\d+) \((\d+)%\); mean length (\d+\.\d) letters \(the data's: (\d+\.\d)\)$");
        Assert.True(newNames.Success, lines[^2]);
        var validation = Regex.Match(lines[^1], @"^Validation loss: (\d+\.\d{3}) for this model, (\d+\.\d{3}) for a count bigram$");
        Assert.True(validation.Success, lines[^1]);
        double Number(Match m, int group) => TextReport.Number(m.Groups[group].Value);

        Assert.Equal(Output.JsonSamples(json).Count(s => !s.InTraining), (int)Number(newNames, 1));
        Assert.Equal(60, (int)Number(newNames, 2));
        Assert.Equal(json.GetProperty("new_share").GetDouble() * 100, Number(newNames, 3), 0.5 + 1e-9);
        Assert.Equal(json.GetProperty("mean_length").GetDouble(), Number(newNames, 4), 0.05 + 1e-9);
        Assert.Equal(DataMeanLength(), Number(newNames, 5), 0.05 + 1e-9);
        Assert.Equal(json.GetProperty("val_loss").GetDouble(), Number(validation, 1), 0.0005 + 1e-9);
        Assert.Equal(json.GetProperty("bigram_val_loss").GetDouble(), Number(validation, 2), 0.0005 + 1e-9);
    }

    [Fact]
    public void KeptStepIsReportedWhenItIsNotTheLast()
    {
        // forty names learned by heart: the validation loss is lowest early and then rises, so the
        // run keeps an earlier step's weights and says which
        using var file = new TempFile(TestData.TinyNames);
        string[] args = ["--names", file.Path, "--steps", "3000", "--batch-size", "32", "--samples", "3", "--seed", "2"];
        var json = Cli.Run([.. args, "--json"]).Json();
        long best = json.GetProperty("best_step").GetInt64();
        Assert.True(best < 3000, $"best_step {best}: this run no longer overfits; pick a longer one");
        var text = Cli.Run(args);
        text.AssertSuccess();
        Assert.Equal($"Kept: the weights of step {best.ToString("N0", CultureInfo.InvariantCulture)}, where the validation loss was lowest", text.OutLines[3]);
        // the figures are those of the kept weights: its validation loss is the lowest measured
        var loss = TextReport.Line(text.OutLines, @"^Final loss: (\d+\.\d{3}) \(train\) (\d+\.\d{3}) \(validation\)$");
        Assert.Equal(json.GetProperty("val_loss").GetDouble(), TextReport.Number(loss.Groups[2].Value), 0.0005 + 1e-9);
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
        return validation.SelectMany(Pairs).Select(p =>
            -Math.Log((pairCounts.GetValueOrDefault(p) + 1.0) / (previousCounts.GetValueOrDefault(p.Item1) + V))).Average();
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

/// <summary>Output that cannot be written is an output error: one line, exit code 1.</summary>
public class OutputErrorTests
{
    /// <summary>A writer whose every write fails as a full disk does.</summary>
    sealed class FullWriter : TextWriter
    {
        public override Encoding Encoding => Encoding.UTF8;
        public override void Write(char value) => throw new IOException("No space left on device");
        public override void Write(string? value) => throw new IOException("No space left on device");
        public override void Write(char[] buffer, int index, int count) => throw new IOException("No space left on device");
    }

    static CliResult RunInto(TextWriter stdout, params string[] args)
    {
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return new(code, "", stderr.ToString());
    }

    [Theory]
    [InlineData("--steps 5 --samples 3")]
    [InlineData("--steps 5 --samples 3 --json")]
    [InlineData("--help")]
    public void AWriterThatFailsIsAnOutputError(string args)
    {
        var line = RunInto(new FullWriter(), args.Split(' ')).AssertOneError(1);
        Assert.StartsWith("error: cannot write the output", line);
    }

    [Theory]
    [InlineData("--steps 5 --samples 3")]
    [InlineData("--steps 5 --samples 3 --json")]
    [InlineData("--help")]
    public void AFullDiskIsAnOutputError(string args)
    {
        var r = BuiltApp.Shell($"{BuiltApp.Quoted} {args} > /dev/full");
        var line = r.AssertOneError(1);
        Assert.StartsWith("error: cannot write the output", line);
    }

    [Fact]
    public void AClosedStandardOutputIsAnOutputError()
    {
        var r = BuiltApp.Shell($"{BuiltApp.Quoted} --steps 5 --samples 3 >&-");
        var line = r.AssertOneError(1);
        Assert.StartsWith("error: cannot write the output", line);
    }
}
