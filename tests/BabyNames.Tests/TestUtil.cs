using System.Text;

namespace BabyNames.Tests;

/// <summary>The command line, run in-process.</summary>
internal sealed record CliResult(int Code, string Out, string Err)
{
    public string[] OutLines => Out.Replace("\r\n", "\n").TrimEnd('\n').Split('\n');

    /// <summary>Exit code as given, nothing on stdout, exactly one line on stderr that starts with
    /// "error: ". Returns that line.</summary>
    public string AssertOneError(int expectedCode)
    {
        Assert.True(Code == expectedCode, $"exit code {Code}, expected {expectedCode}; stderr: {Err}; stdout: {Out}");
        Assert.Equal("", Out);
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
    public static double[] LogSoftmax(float[] row, int offset, int V)
    {
        double max = double.NegativeInfinity;
        for (int v = 0; v < V; v++) max = Math.Max(max, row[offset + v]);
        double sum = 0;
        for (int v = 0; v < V; v++) sum += Math.Exp(row[offset + v] - max);
        double logZ = max + Math.Log(sum);
        var result = new double[V];
        for (int v = 0; v < V; v++) result[v] = row[offset + v] - logZ;
        return result;
    }

    /// <summary>The model's loss for contexts and targets, from its parameters, in double: each
    /// position k of the context looks up row k·V+c (positional) or c (order-blind), the rows are
    /// summed, scored against every character's weight row plus bias, then mean cross-entropy.</summary>
    public static double ModelLoss(Model m, int[][] contexts, int[] targets)
    {
        int V = m.V, W = m.Width;
        double total = 0;
        for (int b = 0; b < targets.Length; b++)
        {
            var h = new double[W];
            for (int k = 0; k < m.K; k++)
            {
                int row = m.Positional ? k * V + contexts[b][k] : contexts[b][k];
                for (int d = 0; d < W; d++) h[d] += m.Embedding.Data[row * W + d];
            }
            var logits = new double[V];
            for (int v = 0; v < V; v++)
            {
                double s = m.Bias.Data[v];
                for (int d = 0; d < W; d++) s += h[d] * m.Weight.Data[v * W + d];
                logits[v] = s;
            }
            double max = logits.Max();
            double logZ = max + Math.Log(logits.Sum(l => Math.Exp(l - max)));
            total += logZ - logits[targets[b]];
        }
        return total / targets.Length;
    }
}
