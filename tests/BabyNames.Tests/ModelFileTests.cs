using System.Text;
using System.Text.Json;

namespace BabyNames.Tests;

/// <summary>A model file written here byte by byte from the format that Program.cs's "Model
/// files" comment describes, independently of ModelFile: every field can be set, also to values
/// that no saved file has.</summary>
internal sealed class ModelFileBytes
{
    public uint Version = 2;
    public int Kind;                 // 0 the bag, 1 the MLP
    public int V, K, D, H;
    public bool Positional = true;
    public int[] Letters = [];       // V−1 code points, the boundary left out
    public int NameCount;
    public long Steps, BestStep;
    public double[] Figures = [2.0, 2.25, 2.5, 4.75]; // train loss, validation loss, count bigram's, mean name length
    public int? TrainingCount;       // null: the number of names below
    public List<byte[]> Names = [];  // each training name's UTF-8 bytes
    public byte[]? FirstLength;      // in place of the first name's encoded length, if set
    public float[][] Tables = [];    // at their padded shapes, in Model.Params order

    static int Round(int size, int to) => (size + to - 1) / to * to;
    public int Dp => Round(D, 16);
    public int Hp => Round(H, 16);
    public int Vr => Round(V, 4);
    public int Vp => Round(V, 16);

    /// <summary>The tables' shapes: the bag's E (K·V rows, or V order-blind), W, b; the MLP's E,
    /// W1, b1, W, b.</summary>
    public (int Rows, int Cols)[] Shapes => Kind == 0
        ? [(Positional ? K * V : V, Dp), (Vr, Dp), (1, Vp)]
        : [(V, Dp), (Hp, K * Dp), (1, Hp), (Vr, Hp), (1, Vp)];

    public float[][] ZeroTables() => [.. Shapes.Select(s => new float[s.Rows * s.Cols])];

    public byte[] Bytes()
    {
        var body = new MemoryStream();
        void Int(int x) => body.Write(BitConverter.GetBytes(x));
        void Long(long x) => body.Write(BitConverter.GetBytes(x));
        body.Write("BABYNAME"u8);
        body.Write(BitConverter.GetBytes(Version));
        if (Version == 1)
            foreach (var size in new[] { V, K, D, Dp, Vr, Vp }) Int(size);
        else
            foreach (var size in new[] { Kind, V, K, D, H }) Int(size);
        body.WriteByte(Positional ? (byte)1 : (byte)0);
        foreach (var c in Letters) Int(c);
        Int(NameCount);
        Long(Steps);
        if (Version != 1) Long(BestStep);
        foreach (var x in Figures) body.Write(BitConverter.GetBytes(x));
        Int(TrainingCount ?? Names.Count);
        foreach (var name in Names)
        {
            // a .NET string: its UTF-8 length in 7-bit groups, low first, then the bytes
            if (FirstLength is not null && name == Names[0]) body.Write(FirstLength);
            else for (uint n = (uint)name.Length; ; n >>= 7)
            {
                body.WriteByte((byte)(n < 0x80 ? n : (n & 0x7F) | 0x80));
                if (n < 0x80) break;
            }
            body.Write(name);
        }
        foreach (var table in Tables) foreach (var x in table) body.Write(BitConverter.GetBytes(x));
        body.Write(BitConverter.GetBytes(TestData.Fnv1a(body.ToArray())));
        return body.ToArray();
    }

    public static byte[] Utf8(string name) => Encoding.UTF8.GetBytes(name);

    /// <summary>A bag over the letters a and b that spells "ab" and nothing else: the last letter
    /// of the context (one-hot in E's rows for the last position) picks the next letter through W,
    /// boundary → a → b → boundary, each with a logit 30 above the others.</summary>
    public static ModelFileBytes AbBag(uint version = 2, bool positional = true)
    {
        var f = new ModelFileBytes
        {
            Version = version, Kind = 0, V = 3, K = positional ? 2 : 1, D = 3, Positional = positional,
            Letters = ['a', 'b'], NameCount = 2, Steps = 123, BestStep = 123, Names = [Utf8("ab")],
        };
        f.Tables = f.ZeroTables();
        int last = positional ? (f.K - 1) * f.V : 0; // E's rows for the last context position
        for (int c = 0; c < 3; c++) f.Tables[0][(last + c) * f.Dp + c] = 1;
        f.Tables[1][1 * f.Dp + 0] = 30; // after the boundary: a
        f.Tables[1][2 * f.Dp + 1] = 30; // after a: b
        f.Tables[1][0 * f.Dp + 2] = 30; // after b: the end
        return f;
    }

    /// <summary>A small MLP over a, b, c with random weights in the real columns.</summary>
    public static ModelFileBytes SmallMlp()
    {
        var f = new ModelFileBytes
        {
            Kind = 1, V = 4, K = 2, D = 3, H = 5, Letters = ['a', 'b', 'c'], NameCount = 3, Steps = 40, BestStep = 32,
            Names = [Utf8("ab"), Utf8("cab")],
        };
        f.Tables = f.ZeroTables();
        var random = new Random(7);
        float Draw() => (float)(random.NextDouble() - 0.5);
        for (int c = 0; c < f.V; c++) for (int d = 0; d < f.D; d++) f.Tables[0][c * f.Dp + d] = Draw();
        for (int h = 0; h < f.H; h++) for (int k = 0; k < f.K; k++) for (int d = 0; d < f.D; d++) f.Tables[1][h * f.K * f.Dp + k * f.Dp + d] = Draw();
        for (int h = 0; h < f.H; h++) f.Tables[2][h] = Draw();
        for (int v = 0; v < f.V; v++) for (int h = 0; h < f.H; h++) f.Tables[3][v * f.Hp + h] = Draw();
        for (int v = 0; v < f.V; v++) f.Tables[4][v] = Draw();
        return f;
    }

    /// <summary>The file that ModelFile.Save should write for a trained model, by this writer.</summary>
    public static ModelFileBytes Of(Trained t) => new()
    {
        Kind = (int)t.Model.Kind, V = t.Model.V, K = t.Model.K, D = t.Model.D, H = t.Model.H, Positional = t.Model.Positional,
        Letters = [.. t.Vocab.Letters.Select(r => r.Value)], NameCount = t.NameCount, Steps = t.Steps, BestStep = t.BestStep,
        Figures = [t.TrainLoss, t.ValidationLoss, t.BigramLoss, t.MeanLength],
        Names = [.. t.TrainingNames.Select(Utf8)], Tables = [.. t.Model.Params.Select(p => p.Data)],
    };
}

/// <summary>One model trained on the syllable names through the command line and saved, for the
/// tests that load it.</summary>
public sealed class SavedModel : IDisposable
{
    readonly TempDir dir = new();
    public string Path { get; }
    public string NamesPath { get; }
    public byte[] Bytes { get; }
    internal static readonly string[] TrainArgs = ["--steps", "150", "--context", "4", "--dim", "16", "--hidden", "32", "--batch-size", "32"];

    public SavedModel()
    {
        NamesPath = dir.File("names.txt");
        File.WriteAllText(NamesPath, TestData.SyllableNamesFile);
        Path = dir.File("model.bin");
        Cli.Run([.. TrainArgs, "--names", NamesPath, "--save", Path, "--samples", "0"]).AssertSuccess();
        Bytes = File.ReadAllBytes(Path);
    }

    public void Dispose() => dir.Dispose();
}

public class ModelFileTests(SavedModel saved) : IClassFixture<SavedModel>
{
    static int[] Bits(float[] data) => [.. data.Select(BitConverter.SingleToInt32Bits)];

    /// <summary>A model trained a little on names with accents and a letter outside the BMP.</summary>
    static Trained MakeTrained(ModelKind kind, bool positional, int dim, int hidden, int batch)
    {
        List<string> names = [.. TestData.SyllableNames, "zoë", "jürgen", "\U0001D11Eoba", "o'neil", "anne-marie"];
        var corpus = Corpus.Split(names, new Rng(4, 1));
        var model = new Model(kind, corpus.Vocab.Size, 3, dim, hidden, positional, batch, new Rng(4, 2));
        var result = Trainer.Train(model, new Examples(corpus.Train, corpus.Vocab, 3), new Examples(corpus.Validation, corpus.Vocab, 3),
            new TrainOptions(0.5f, Steps: 60), new Rng(4, 3));
        return new(model, corpus.Vocab, corpus.Train.ToHashSet(), names.Count, result.Steps, result.BestStep,
            result.TrainLoss, result.ValidationLoss, 2.5, 4.75);
    }

    static void SaveTo(Trained t, string path) => ModelFile.Save(t, ModelFile.Target(path), path);

    static string Write(TempDir dir, byte[] bytes, string name = "model.bin")
    {
        var path = dir.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    // ---------------------------------------------------------------------------------------------
    // Version 2, as saved

    [Fact]
    public void ADotInTheNamesIsALetterAndItsModelLoads()
    {
        // '.' also shows the end of a name in scores; in the vocabulary it is a letter like any other
        using var names = new TempFile(["st.john", "j.r.", "anna", "ann", "hanna", "john", "jon", "joan"]);
        using var dir = new TempDir();
        string path = dir.File("dot.bin");
        Cli.Run("--names", names.Path, "--steps", "20", "--samples", "1", "--save", path).AssertSuccess();
        var loaded = ModelFile.Load(path);
        Assert.Contains(new Rune('.'), loaded.Vocab.Letters);
        Assert.True(loaded.Vocab.Knows("st.john", out _));
        Cli.Run("--load", path, "--samples", "3").AssertSuccess();
    }

    [Theory]
    [InlineData("bag", true, 16, 0, 16)]
    [InlineData("bag", false, 5, 0, 16)]
    [InlineData("mlp", true, 8, 20, 16)]   // B ≤ V: the first layer per example
    [InlineData("mlp", true, 17, 33, 128)] // B > V: the first layer as a table
    public void Version2RoundTripsEveryBit(string model, bool positional, int dim, int hidden, int batch)
    {
        var kind = model == "mlp" ? ModelKind.Mlp : ModelKind.Bag;
        var t = MakeTrained(kind, positional, dim, hidden, batch);
        Assert.Equal(batch > t.Model.V && kind == ModelKind.Mlp, t.Model.UsesTable);
        using var dir = new TempDir();
        var path = dir.File("direct.bin");
        SaveTo(t, path);
        Assert.Equal(["direct.bin"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));

        var u = ModelFile.Load(path);
        var (a, b) = (t.Model, u.Model);
        Assert.Equal((a.Kind, a.V, a.K, a.D, a.H, a.Dp, a.Positional), (b.Kind, b.V, b.K, b.D, b.H, b.Dp, b.Positional));
        Assert.Single(b.Shards); // a loaded model samples and scores: one shard is enough
        Assert.Equal(a.Params.Length, b.Params.Length);
        for (int p = 0; p < a.Params.Length; p++)
        {
            Assert.Equal((a.Params[p].Rows, a.Params[p].Cols), (b.Params[p].Rows, b.Params[p].Cols));
            Assert.Equal(Bits(a.Params[p].Data), Bits(b.Params[p].Data));
        }
        Assert.Equal(t.Vocab.Letters, u.Vocab.Letters);
        Assert.Contains(new Rune(0x1D11E), u.Vocab.Letters);
        Assert.Equal(t.TrainingNames.Order(StringComparer.Ordinal), u.TrainingNames.Order(StringComparer.Ordinal));
        Assert.Equal((t.NameCount, t.Steps, t.BestStep, t.TrainLoss, t.ValidationLoss, t.BigramLoss, t.MeanLength),
            (u.NameCount, u.Steps, u.BestStep, u.TrainLoss, u.ValidationLoss, u.BigramLoss, u.MeanLength));

        // and the loaded model samples exactly what the saved one does
        var rules = new SamplingRules(Temperature: 1.3f);
        var (ra, rb) = (new Rng(8, 4), new Rng(8, 4));
        for (int i = 0; i < 30; i++)
            Assert.Equal(Sampling.Sample(a, t.Vocab, ra, rules), Sampling.Sample(b, u.Vocab, rb, rules));
    }

    [Theory]
    [InlineData("bag", true)]
    [InlineData("bag", false)]
    [InlineData("mlp", true)]
    public void SaveWritesTheDocumentedFormat(string model, bool positional)
    {
        var kind = model == "mlp" ? ModelKind.Mlp : ModelKind.Bag;
        // the file that Save writes is, byte for byte, the one the format comment describes
        var t = MakeTrained(kind, positional, 8, kind == ModelKind.Mlp ? 12 : 0, 16);
        using var dir = new TempDir();
        var path = dir.File("m.bin");
        SaveTo(t, path);
        Assert.Equal(ModelFileBytes.Of(t).Bytes(), File.ReadAllBytes(path));
    }

    [Fact]
    public void AFileWrittenFromTheFormatLoads()
    {
        var f = ModelFileBytes.SmallMlp();
        using var dir = new TempDir();
        var u = ModelFile.Load(Write(dir, f.Bytes()));
        Assert.Equal((ModelKind.Mlp, 4, 2, 3, 5), (u.Model.Kind, u.Model.V, u.Model.K, u.Model.D, u.Model.H));
        for (int p = 0; p < f.Tables.Length; p++) Assert.Equal(Bits(f.Tables[p]), Bits(u.Model.Params[p].Data));
        Assert.Equal(["ab", "cab"], u.TrainingNames.Order(StringComparer.Ordinal));
        Assert.Equal((3, 40L, 32L, 2.0, 2.25, 2.5, 4.75), (u.NameCount, u.Steps, u.BestStep, u.TrainLoss, u.ValidationLoss, u.BigramLoss, u.MeanLength));
        Assert.Equal("abc", string.Concat(u.Vocab.Letters));
    }

    // ---------------------------------------------------------------------------------------------
    // Version 1: the bag, from before the MLP

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Version1FilesStillLoad(bool positional)
    {
        var f = ModelFileBytes.AbBag(version: 1, positional);
        using var dir = new TempDir();
        var path = Write(dir, f.Bytes());

        var u = ModelFile.Load(path);
        var m = u.Model;
        Assert.Equal((ModelKind.Bag, 3, f.K, 3, 0, positional), (m.Kind, m.V, m.K, m.D, m.H, m.Positional));
        for (int p = 0; p < f.Tables.Length; p++) Assert.Equal(Bits(f.Tables[p]), Bits(m.Params[p].Data));
        Assert.Equal("ab", string.Concat(u.Vocab.Letters));
        Assert.Equal(["ab"], u.TrainingNames);
        Assert.Equal((2, 123L, 123L), (u.NameCount, u.Steps, u.BestStep)); // version 1 kept the last step
        Assert.Equal((2.0, 2.25, 2.5, 4.75), (u.TrainLoss, u.ValidationLoss, u.BigramLoss, u.MeanLength));
        // the weights mean what they meant: boundary → a → b → boundary, nearly certainly
        var a = Reference.LogProbs(m, positional ? [0, 0] : [0]);
        Assert.True(a[1] > -1e-9, $"log p(a | start) = {a[1]}");
        Assert.True(Reference.LogProbs(m, positional ? [0, 1] : [1])[2] > -1e-9);
        Assert.True(Reference.LogProbs(m, positional ? [1, 2] : [2])[0] > -1e-9);

        // through the command line: it samples "ab", a training name, and reports the file's run
        var r = Cli.Run("--load", path, "--samples", "5", "--json");
        r.AssertSuccess();
        var json = r.Json();
        Assert.All(Output.JsonSamples(json), s => Assert.Equal(("ab", true), s));
        Assert.Equal(5, Output.JsonSamples(json).Count);
        Assert.Equal("bag", json.GetProperty("model").GetString());
        Assert.Equal(123, json.GetProperty("steps").GetInt64());
        Assert.Equal(123, json.GetProperty("best_step").GetInt64());
        Assert.Equal(!positional, json.GetProperty("options").GetProperty("order_blind").GetBoolean());
        var text = Cli.Run("--load", path, "--samples", "2");
        text.AssertSuccess();
        Assert.Equal($"Loaded: {path} (trained for 123 steps)", text.OutLines[1]);
    }

    [Fact]
    public void Version1MayHoldOnlyTheBag()
    {
        // version 1 has no kind: its sizes are the bag's, whatever follows
        var f = ModelFileBytes.AbBag(version: 1);
        using var dir = new TempDir();
        Assert.Equal(ModelKind.Bag, ModelFile.Load(Write(dir, f.Bytes())).Model.Kind);
    }

    // ---------------------------------------------------------------------------------------------
    // Through the command line

    [Fact]
    public void SavedThenLoadedGivesTheSameSamplesForTheSameSeed()
    {
        using var dir = new TempDir();
        var model = dir.File("model.bin");
        string[] sampling = ["--samples", "25", "--seed", "9", "--temperature", "1.5"];

        var trainedText = Cli.Run([.. SavedModel.TrainArgs, "--names", saved.NamesPath, "--save", model, .. sampling]);
        trainedText.AssertSuccess();
        var loadedText = Cli.Run(["--load", model, .. sampling]);
        loadedText.AssertSuccess();
        var samples = Output.TextSamples(trainedText.Out);
        Assert.Equal(25, samples.Count);
        Assert.Equal(samples, Output.TextSamples(loadedText.Out));
        Assert.Equal($"Loaded: {model} (trained for 150 steps)", loadedText.OutLines[1]);

        var trainedJson = Cli.Run([.. SavedModel.TrainArgs, "--names", saved.NamesPath, "--save", model, .. sampling, "--json"]);
        Assert.Equal(0, trainedJson.Code);
        var trained = trainedJson.Json();
        var loaded = Cli.Run(["--load", model, .. sampling, "--json"]).Json();
        Assert.Equal(samples, Output.JsonSamples(trained));
        Assert.Equal(samples, Output.JsonSamples(loaded));
        foreach (var field in new[] { "train_loss", "val_loss", "bigram_val_loss", "data_mean_length", "new_share", "mean_length" })
            Assert.Equal(trained.GetProperty(field).GetDouble(), loaded.GetProperty(field).GetDouble());
        foreach (var field in new[] { "vocab_size", "names", "steps", "best_step" })
            Assert.Equal(trained.GetProperty(field).GetInt64(), loaded.GetProperty(field).GetInt64());
        Assert.Equal(model, loaded.GetProperty("options").GetProperty("load").GetString());
        Assert.Equal(4, loaded.GetProperty("options").GetProperty("context").GetInt32()); // the model's, not the default 6
        Assert.Equal(32, loaded.GetProperty("options").GetProperty("hidden").GetInt32());

        // and a different seed gives different samples from the same file
        var other = Cli.Run("--load", model, "--samples", "25", "--seed", "10", "--temperature", "1.5", "--json").Json();
        Assert.NotEqual(samples, Output.JsonSamples(other));
    }

    [Fact]
    public void LoadJsonReportsTheModelsRunAndNoSpeed()
    {
        var r = InProcess.Run(["--load", saved.Path, "--samples", "2", "--json"], training: _ => Assert.Fail("training started"));
        r.AssertSuccess();
        var json = r.Json();
        Assert.Equal(150, json.GetProperty("steps").GetInt64());
        Assert.Equal(ModelFile.Load(saved.Path).BestStep, json.GetProperty("best_step").GetInt64());
        Assert.Equal(0, json.GetProperty("examples_per_second").GetDouble());
        Assert.Equal(0, json.GetProperty("seconds").GetDouble());
        Assert.Equal(JsonValueKind.Null, json.GetProperty("examples").ValueKind);
        // the work a step does depends on the batch and threads of a run, which a loaded model has not
        Assert.Equal(JsonValueKind.Null, json.GetProperty("macs_per_example").ValueKind);
        var o = json.GetProperty("options");
        foreach (var training in new[] { "names_file", "seconds", "steps", "batch_size", "lr", "threads" })
            Assert.Equal(JsonValueKind.Null, o.GetProperty(training).ValueKind);
    }

    [Fact]
    public void OneStepIsSingular()
    {
        using var dir = new TempDir();
        var model = dir.File("one.bin");
        Cli.Run("--names", saved.NamesPath, "--steps", "1", "--samples", "0", "--save", model).AssertSuccess();
        var r = Cli.Run("--load", model, "--samples", "1");
        r.AssertSuccess();
        Assert.Equal($"Loaded: {model} (trained for 1 step)", r.OutLines[1]);
    }

    [Fact]
    public void SamplingOptionsWorkWithLoad()
    {
        var r = Cli.Run("--load", saved.Path, "--samples", "10", "--prefix", "ki", "--temperature", "0.8", "--top-k", "5",
            "--unique", "--new-only", "--min-length", "4", "--json");
        r.AssertSuccess();
        var samples = Output.JsonSamples(r.Json());
        Assert.Equal(10, samples.Count);
        Assert.All(samples, s =>
        {
            Assert.StartsWith("ki", s.Name, StringComparison.Ordinal);
            Assert.True(s.Name.Length >= 4, s.Name);
            Assert.False(s.InTraining);
        });
        Assert.Contains("--prefix", Cli.Run("--load", saved.Path, "--prefix", "z").AssertOneError(2));
    }

    public static TheoryData<string[]> TrainingOptions => new()
    {
        { ["--context", "3"] }, { ["--steps", "5"] }, { ["--names", "names.txt"] }, { ["--lr", "0.2"] },
        { ["--batch-size", "8"] }, { ["--dim", "8"] }, { ["--hidden", "8"] }, { ["--model", "bag"] }, { ["--threads", "1"] },
        { ["--order-blind"] }, { ["--seconds", "2"] },
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

    // ---------------------------------------------------------------------------------------------
    // Files that are not models

    public static TheoryData<string> BadKinds => new()
    {
        "cut in half", "cut to the header", "one byte flipped", "last byte flipped", "empty", "names.txt", "the app's own binary",
        "random bytes", "version 3", "version 0", "folder", "missing", "extra byte", "/dev/zero", "/dev/null",
    };

    [Theory]
    [MemberData(nameof(BadKinds))]
    public void LoadingABadFileIsExitOneWithOneLineNamingIt(string kind)
    {
        using var dir = new TempDir();
        var path = dir.File("model.bin");
        var good = saved.Bytes;
        byte[]? bytes = kind switch
        {
            "cut in half" => good[..(good.Length / 2)],
            "cut to the header" => good[..12],
            "one byte flipped" => Flip(good, good.Length / 2),
            "last byte flipped" => Flip(good, good.Length - 1),
            "empty" => [],
            "names.txt" => File.ReadAllBytes(Path.Combine(TestData.AppFolder, "names.txt")),
            "the app's own binary" => File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "BabyNames.dll")),
            "random bytes" => RandomBytes(good.Length),
            "version 3" => WithVersion(good, 3),
            "version 0" => WithVersion(good, 0),
            "extra byte" => [.. good, 0],
            _ => null,
        };
        if (bytes is not null) File.WriteAllBytes(path, bytes);
        if (kind == "folder") Directory.CreateDirectory(path);
        if (kind.StartsWith('/')) path = kind;

        var line = InProcess.FailsBeforeTraining(1, "--load", path, "--samples", "3");
        Assert.Contains($"'{path}'", line);
        Assert.DoesNotContain("internal error", line);
        Assert.Contains(path, Cli.Run("--load", path, "--samples", "3", "--json").AssertOneError(1));
        if (kind == "folder") Assert.True(Directory.Exists(path));
        else if (bytes is not null) Assert.Equal(bytes, File.ReadAllBytes(path)); // a load never writes
        if (kind.StartsWith("version")) Assert.Contains("version", line);
        if (kind is "names.txt" or "random bytes" or "the app's own binary" or "empty" or "/dev/zero" or "/dev/null")
            Assert.Contains("not a BabyNames model", line);

        static byte[] Flip(byte[] b, int at) { var c = (byte[])b.Clone(); c[at] ^= 0x10; return c; }
        static byte[] RandomBytes(int n) { var c = new byte[n]; new Random(5).NextBytes(c); return c; }
        static byte[] WithVersion(byte[] b, uint v)
        {
            var c = (byte[])b.Clone();
            BitConverter.GetBytes(v).CopyTo(c, 8);
            TestData.Rehash(c);
            return c;
        }
    }

    [Fact]
    public void AnyOneChangedByteIsCaught()
    {
        // FNV-1a changes with any one byte, wherever it is: header, names or tables
        using var dir = new TempDir();
        var path = dir.File("model.bin");
        var good = saved.Bytes;
        for (int at = 0; at < good.Length; at += at < 400 ? 1 : 97)
        {
            var bytes = (byte[])good.Clone();
            bytes[at] ^= 0x04;
            File.WriteAllBytes(path, bytes);
            var e = Assert.Throws<UserError>(() => ModelFile.Load(path));
            Assert.Equal(1, e.ExitCode);
            Assert.Contains(path, e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
    }

    /// <summary>Damage behind a valid hash: each changes one field of a good file and recomputes
    /// the hash; each must be refused.</summary>
    public static TheoryData<string> Damages => new()
    {
        "kind 2", "kind -1", "V 1", "V 257", "K 0", "K 17", "D 0", "D 1025", "H 0", "H 1025", "bag with H", "letters out of order",
        "letter twice", "control letter", "zero-width letter", "bidi override letter",
        "surrogate letter", "negative letter", "name count 1", "steps -1", "best step after the last", "best step -1",
        "train loss NaN", "validation loss infinite", "bigram loss negative", "mean length NaN", "more training names than names",
        "training count -1", "empty name", "negative name length", "name with a letter not in the vocabulary", "name of 51 letters", "name not UTF-8",
        "weight NaN", "bias infinite", "table cut short",
    };

    static ModelFileBytes Damaged(string damage)
    {
        var f = damage is "H 0" or "H 1025" or "weight NaN" ? ModelFileBytes.SmallMlp() : ModelFileBytes.AbBag();
        switch (damage)
        {
            case "kind 2": f.Kind = 2; break;
            case "kind -1": f.Kind = -1; break;
            case "V 1": f.V = 1; break;
            case "V 257": f.V = 257; break;
            case "K 0": f.K = 0; break;
            case "K 17": f.K = 17; break;
            case "D 0": f.D = 0; break;
            case "D 1025": f.D = 1025; break;
            case "H 0": f.H = 0; break;
            case "H 1025": f.H = 1025; break;
            case "bag with H": f.H = 4; break;
            case "letters out of order": f.Letters = ['b', 'a']; break;
            case "letter twice": f.Letters = ['a', 'a']; break;
            case "control letter": f.Letters = [0x01, 'a']; break;
            case "zero-width letter": f.Letters = ['a', 0x200B]; break;
            case "bidi override letter": f.Letters = ['a', 0x202E]; break;
            case "surrogate letter": f.Letters = ['a', 0xD800]; break;
            case "negative letter": f.Letters = [-5, 'a']; break;
            case "name count 1": f.NameCount = 1; break;
            case "steps -1": f.Steps = -1; f.BestStep = 0; break;
            case "best step after the last": f.BestStep = f.Steps + 1; break;
            case "best step -1": f.BestStep = -1; break;
            case "train loss NaN": f.Figures[0] = double.NaN; break;
            case "validation loss infinite": f.Figures[1] = double.PositiveInfinity; break;
            case "bigram loss negative": f.Figures[2] = -1; break;
            case "mean length NaN": f.Figures[3] = double.NaN; break;
            case "more training names than names": f.Names = [ModelFileBytes.Utf8("ab"), ModelFileBytes.Utf8("ba"), ModelFileBytes.Utf8("aab")]; break;
            case "training count -1": f.TrainingCount = -1; f.Names = []; break;
            case "empty name": f.Names = [[]]; break;
            case "negative name length": f.FirstLength = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]; break; // −1
            case "name with a letter not in the vocabulary": f.Names = [ModelFileBytes.Utf8("abz")]; break;
            case "name of 51 letters": f.Names = [ModelFileBytes.Utf8(new string('a', 51))]; break;
            case "name not UTF-8": f.Names = [[0x61, 0xFF]]; break;
            case "weight NaN": f.Tables[1][0] = float.NaN; break;
            case "bias infinite": f.Tables[2][1] = float.PositiveInfinity; break;
            case "table cut short": f.Tables[2] = f.Tables[2][..^1]; break;
            default: throw new ArgumentException(damage);
        }
        return f;
    }

    [Theory]
    [MemberData(nameof(Damages))]
    public void DamageBehindAValidHashIsRefused(string damage)
    {
        using var dir = new TempDir();
        // the undamaged files load
        ModelFile.Load(Write(dir, ModelFileBytes.AbBag().Bytes(), "good-bag.bin"));
        ModelFile.Load(Write(dir, ModelFileBytes.SmallMlp().Bytes(), "good-mlp.bin"));

        var path = Write(dir, Damaged(damage).Bytes());
        var line = InProcess.FailsBeforeTraining(1, "--load", path, "--samples", "1");
        Assert.Contains($"model file '{path}'", line);
        Assert.DoesNotContain("internal error", line);
        Assert.EndsWith("give a file saved with --save", line);
    }

    [Fact]
    public void AVocabularyWithAControlCharacterIsRefused()
    {
        using var dir = new TempDir();
        var f = ModelFileBytes.AbBag();
        f.Letters = [0x07, 'a'];
        var path = Write(dir, f.Bytes());
        var line = Cli.Run("--load", path, "--samples", "1").AssertOneError(1);
        Assert.Equal($"error: model file '{path}' has a damaged vocabulary; give a file saved with --save", line);
    }

    [Fact]
    public void ModelFileLoadOfAFolderOrAMissingFileIsAUserError()
    {
        using var dir = new TempDir();
        Assert.Contains("folder", Assert.Throws<UserError>(() => ModelFile.Load(dir.Path)).Message);
        var missing = dir.File("missing.bin");
        Assert.Contains(missing, Assert.Throws<UserError>(() => ModelFile.Load(missing)).Message);
    }
}
