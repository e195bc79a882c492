using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace BabyNames.Tests;

// Helpers that every test file shares: running the program (in-process and as the built app),
// reading its output, files and folders that clean up after themselves, test data, and the
// double-precision references that the model is checked against.

/// <summary>The command line, run in-process, and what it printed.</summary>
internal sealed record CliResult(int Code, string Out, string Err)
{
    public string[] OutLines => Out.Replace("\r\n", "\n").TrimEnd('\n').Split('\n');

    /// <summary>Exit code as given, nothing on stdout, exactly one line on stderr that starts with
    /// "error: ". Returns that line.</summary>
    public string AssertOneError(int expectedCode)
    {
        Assert.True(Code == expectedCode, $"exit code {Code}, expected {expectedCode}; stderr: {Err}; stdout: {Out}");
        Assert.Equal("", Out);
        return AssertErrorLine();
    }

    /// <summary>Exactly one line on stderr, "error: ..." with something to say; returns it.</summary>
    public string AssertErrorLine()
    {
        var err = Err.Replace("\r\n", "\n");
        Assert.EndsWith("\n", err);
        var lines = err[..^1].Split('\n');
        Assert.True(lines.Length == 1, $"expected one stderr line, got {lines.Length}: {Err}");
        Assert.StartsWith("error: ", lines[0]);
        Assert.True(lines[0].Length > "error: ".Length + 5, $"error line too short to be useful: {lines[0]}");
        return lines[0];
    }

    public void AssertSuccess()
    {
        Assert.True(Code == 0, $"exit code {Code}; stderr: {Err}");
        Assert.Equal("", Err);
        Assert.NotEqual("", Out);
    }

    /// <summary>The JSON object on stdout of a successful run.</summary>
    public JsonElement Json()
    {
        Assert.True(Code == 0, $"exit code {Code}; stderr: {Err}");
        using var doc = JsonDocument.Parse(Out);
        return doc.RootElement.Clone();
    }
}

internal static class Cli
{
    public static CliResult Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return new(code, stdout.ToString(), stderr.ToString());
    }
}

/// <summary>The built program, run as a process of its own (for signals, exit codes of the real
/// process, environment switches, standard input).</summary>
internal static class App
{
    /// <summary>A started process of the app, with its output redirected.</summary>
    public static Process Start(IEnumerable<string> args, IDictionary<string, string>? environment = null, bool redirectInput = false)
    {
        var start = new ProcessStartInfo
        {
            // the test host runs on the same dotnet as the app
            FileName = Environment.ProcessPath is string p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet",
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = redirectInput, UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "BabyNames.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        if (environment is not null) foreach (var (k, v) in environment) start.Environment[k] = v;
        return Process.Start(start)!;
    }

    /// <summary>Runs the app to the end (60 s at most) and returns what it printed.</summary>
    public static CliResult Run(IEnumerable<string> args, IDictionary<string, string>? environment = null, string? input = null)
    {
        using var app = Start(args, environment, input is not null);
        var output = app.StandardOutput.ReadToEndAsync();
        var errors = app.StandardError.ReadToEndAsync();
        if (input is not null)
        {
            app.StandardInput.Write(input);
            app.StandardInput.Close();
        }
        Assert.True(app.WaitForExit(60_000), "the program did not finish");
        return new(app.ExitCode, output.Result, errors.Result);
    }
}

/// <summary>Reading the program's reports.</summary>
internal static class Output
{
    static readonly Regex SampleLine = new(@"^ *(\d+) : (.*?)( \(in training data\))?$");

    public static List<(string Name, bool InTraining)> JsonSamples(JsonElement json) =>
        json.GetProperty("samples").EnumerateArray()
            .Select(s => (s.GetProperty("name").GetString()!, s.GetProperty("in_training").GetBoolean())).ToList();

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
}

/// <summary>A file under the temp folder, deleted on Dispose.</summary>
internal sealed class TempFile : IDisposable
{
    public string Path { get; }

    public TempFile(byte[] bytes)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"babynames-test-{Guid.NewGuid():N}.txt");
        File.WriteAllBytes(Path, bytes);
    }

    public TempFile(string text) : this(new UTF8Encoding(false).GetBytes(text)) { }

    public TempFile(IEnumerable<string> names) : this(string.Join("\n", names) + "\n") { }

    public void Dispose()
    {
        try { File.Delete(Path); } catch (IOException) { }
    }
}

/// <summary>A folder under the temp folder, deleted (with its contents) on Dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; }

    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"babynames-test-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path);
    }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

internal static class TestData
{
    public static byte[] Utf8(string text) => new UTF8Encoding(false).GetBytes(text);

    public static float[] Random(Random r, int length, double scale = 1)
    {
        var a = new float[length];
        for (int i = 0; i < length; i++) a[i] = (float)((r.NextDouble() * 2 - 1) * scale);
        return a;
    }

    /// <summary>A leaf node over a buffer; its backpropagator records the gradient it is given.</summary>
    public static Node<float[]> Leaf(float[] value, Action<float[]> onBack) => new(value, onBack);

    /// <summary>Forty short real names over a handful of letters.</summary>
    public static readonly string[] TinyNames =
    [
        "anna", "hanna", "hannah", "ana", "anne", "annie", "ann", "nan", "nana", "dan", "dana", "danny",
        "ada", "adan", "aden", "eden", "ed", "edna", "enid", "dean", "dena", "deanna", "nina", "nine",
        "ian", "ina", "indie", "diane", "dianna", "heidi", "hein", "henna", "hedda", "ida", "aida",
        "aidan", "aiden", "nadine", "nadia", "danni",
    ];

    /// <summary>150 made-up names built from ten syllables: regular enough that a few hundred steps
    /// generalize to the held-out names (real tiny lists just get memorized).</summary>
    public static readonly string[] SyllableNames = MakeSyllableNames("vo");

    /// <summary>All pairs of ten syllables (nine fixed, the last one given) and 50 triples.</summary>
    public static string[] MakeSyllableNames(string lastSyllable)
    {
        string[] syllables = ["ba", "de", "ki", "lo", "mu", "na", "ri", "sa", "te", lastSyllable];
        var names = new List<string>();
        foreach (var a in syllables) foreach (var b in syllables) names.Add(a + b);
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 10; j++) names.Add(syllables[i] + syllables[j] + syllables[(i + j) % 10]);
        return [.. names];
    }

    public static string SyllableNamesFile => string.Join("\n", SyllableNames) + "\n";

    /// <summary>Names over exactly `letters` letters (so V = letters + 1), 3 to 7 letters long,
    /// every letter used.</summary>
    public static List<string> NamesOver(int letters, int count = 60) =>
        [.. Enumerable.Range(0, Math.Max(count, letters)).Select(i =>
            new string([.. Enumerable.Range(0, 3 + i % 5).Select(j => (char)('a' + (j == 0 ? i % letters : (i * 7 + j * 3) % letters)))]))];

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

    /// <summary>Folder of the app (where BabyNames.csproj and names.txt are), found from the test
    /// binaries upward.</summary>
    public static string AppFolder
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
                if (File.Exists(System.IO.Path.Combine(dir.FullName, "BabyNames.csproj"))) return dir.FullName;
            throw new InvalidOperationException("BabyNames.csproj not found above " + AppContext.BaseDirectory);
        }
    }
}

/// <summary>Straightforward double-precision references, written independently of the app.</summary>
internal static class Reference
{
    /// <summary>log softmax of the first V entries of a row.</summary>
    public static double[] LogSoftmax(IReadOnlyList<double> row, int V)
    {
        double max = double.NegativeInfinity;
        for (int v = 0; v < V; v++) max = Math.Max(max, row[v]);
        double sum = 0;
        for (int v = 0; v < V; v++) sum += Math.Exp(row[v] - max);
        double logZ = max + Math.Log(sum);
        var result = new double[V];
        for (int v = 0; v < V; v++) result[v] = row[v] - logZ;
        return result;
    }

    /// <summary>The model's log-probabilities of every next letter after a context (K ids), from
    /// its parameters, in double. The bag: position k looks up row k·V+c (positional) or c, the
    /// rows are summed and scored against each letter's output row plus bias. The MLP: the K
    /// embeddings concatenated, times W1 (row h holds position k's weights at columns k·Dp..),
    /// plus b1, tanh, then the output layer.</summary>
    public static double[] LogProbs(Model m, IReadOnlyList<int> context)
    {
        int V = m.V, Dp = m.Dp;
        double[] features;
        if (m.Kind == ModelKind.Bag)
        {
            features = new double[Dp];
            for (int k = 0; k < m.K; k++)
            {
                int row = m.Positional ? k * V + context[k] : context[k];
                for (int d = 0; d < Dp; d++) features[d] += m.Embedding.Data[row * Dp + d];
            }
        }
        else
        {
            features = new double[m.Hp];
            for (int h = 0; h < m.H; h++)
            {
                double a = m.HiddenBias!.Data[h];
                for (int k = 0; k < m.K; k++)
                    for (int d = 0; d < m.D; d++)
                        a += m.HiddenWeights!.Data[h * m.HiddenWeights.Cols + k * Dp + d] * (double)m.Embedding.Data[context[k] * Dp + d];
                features[h] = Math.Tanh(a);
            }
        }
        var logits = new double[V];
        for (int v = 0; v < V; v++)
        {
            double s = m.OutputBias.Data[v];
            for (int j = 0; j < features.Length; j++) s += features[j] * m.OutputWeights.Data[v * m.OutputWeights.Cols + j];
            logits[v] = s;
        }
        return LogSoftmax(logits, V);
    }

    /// <summary>Mean cross-entropy of a model over examples (contexts and targets), in double.</summary>
    public static double ModelLoss(Model m, int[][] contexts, int[] targets)
    {
        double total = 0;
        for (int b = 0; b < targets.Length; b++) total -= LogProbs(m, contexts[b])[targets[b]];
        return total / targets.Length;
    }

    /// <summary>Every example of a set, as (context, target).</summary>
    public static (int[][] Contexts, int[] Targets) Unpack(Examples set) =>
        ([.. Enumerable.Range(0, set.Count).Select(i => set.Context(i).ToArray().Select(c => (int)c).ToArray())],
         [.. Enumerable.Range(0, set.Count).Select(set.Next)]);
}
