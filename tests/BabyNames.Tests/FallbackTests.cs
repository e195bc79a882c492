using System.Runtime.Intrinsics;
using System.Text.Json;

namespace BabyNames.Tests;

/// <summary>The kernels' two paths: AVX-512, and Vector512 as two Vector256 halves (with the scalar
/// transpose) where AVX-512 is missing. The built program is run with and without AVX-512 (turned
/// off through the runtime's DOTNET_EnableAVX512 switch): the two runs must agree, and the numbers
/// each reports must be those of the double-precision reference on the model it saved.</summary>
public class FallbackTests
{
    /// <summary>200 names over 36 letters (18 of a–z, and à–é), so V = 37: a partial last vector
    /// of logits, and 40 rows of output weights. Each name is two or three of 18 syllables, each
    /// syllable a letter of one half and its partner of the other, so there is something to learn.</summary>
    static readonly string[] Names36 = MakeNames();

    static string[] MakeNames()
    {
        const string first = "bcdfghjklmnpqrstvw", second = "aeiouxyzàáâãäåæçèé";
        var random = new Random(36); // a seeded System.Random gives the same numbers everywhere
        var names = new List<string>();
        for (int i = 0; names.Count < 200; i++)
        {
            // the first 18 names start with every syllable once
            var syllables = Enumerable.Range(0, 2 + i % 2).Select(j => j == 0 && i < 18 ? i : random.Next(18));
            var name = string.Concat(syllables.Select(s => $"{first[s]}{second[s]}"));
            if (!names.Contains(name)) names.Add(name);
        }
        return [.. names];
    }

    const long Seed = 3;

    static (JsonElement Json, Trained Saved) RunApp(string namesPath, string savePath, string[] options, bool avx512)
    {
        var environment = avx512 ? null : new Dictionary<string, string> { ["DOTNET_EnableAVX512"] = "0" };
        var result = App.Run(["--names", namesPath, "--steps", "100", "--samples", "8", "--seed", Seed.ToString(), "--json",
            "--save", savePath, .. options], environment);
        Assert.True(result.Code == 0, $"exit code {result.Code}: {result.Err}");
        Assert.Equal($"Saved model to {savePath}" + Environment.NewLine, result.Err);
        using var json = JsonDocument.Parse(result.Out);
        return (json.RootElement.Clone(), ModelFile.Load(savePath));
    }

    [Theory]
    [InlineData("bag", 130)] // two shards
    [InlineData("mlp", 130)] // the table (B > V), two shards
    [InlineData("mlp", 12)]  // per example
    public void WithAndWithoutAvx512TheRunIsTheSameAndMatchesTheReference(string model, int batch)
    {
        using var names = new TempFile(Names36);
        using var folder = new TempDir();
        string[] options = ["--model", model, "--batch-size", batch.ToString(), "--context", "3", "--dim", "16", "--lr", "0.5",
            .. model == "mlp" ? new[] { "--hidden", "48" } : []];
        var (fast, fastModel) = RunApp(names.Path, folder.File("fast.bin"), options, avx512: true);
        var (fallback, fallbackModel) = RunApp(names.Path, folder.File("fallback.bin"), options, avx512: false);

        // on a machine without AVX-512 both runs take the fallback, and the comparison shows nothing
        Assert.Equal(Vector512.IsHardwareAccelerated, fast.GetProperty("avx512").GetBoolean());
        Assert.False(fallback.GetProperty("avx512").GetBoolean());
        Assert.Equal(37, fast.GetProperty("vocab_size").GetInt32());
        foreach (var field in new[] { "steps", "best_step", "checks" })
            Assert.Equal(fast.GetProperty(field).GetInt64(), fallback.GetProperty(field).GetInt64());
        foreach (var field in new[] { "train_loss", "val_loss" })
            Assert.Equal(fast.GetProperty(field).GetDouble(), fallback.GetProperty(field).GetDouble(), 1e-5);
        Assert.Equal(fast.GetProperty("samples").ToString(), fallback.GetProperty("samples").ToString());
        Assert.Equal(8, fallback.GetProperty("samples").GetArrayLength());

        // Each run's validation loss, measured by its own kernels on the weights it kept, against
        // the double-precision reference on the saved weights over the same validation names (split
        // as a run splits them).
        var corpus = Corpus.Split([.. Names36], new Rng(Seed, 1));
        var validation = new Examples(corpus.Validation, corpus.Vocab, 3);
        var (contexts, targets) = Reference.Unpack(validation);
        foreach (var (json, saved) in new[] { (fast, fastModel), (fallback, fallbackModel) })
        {
            Assert.Equal(corpus.Vocab.Letters, saved.Vocab.Letters);
            Assert.Equal(model == "mlp" ? ModelKind.Mlp : ModelKind.Bag, saved.Model.Kind);
            double reported = json.GetProperty("val_loss").GetDouble();
            Assert.Equal(reported, saved.ValidationLoss);
            double reference = Reference.ModelLoss(saved.Model, contexts, targets);
            Assert.True(Math.Abs(reported - reference) <= 1e-6 * reference, $"val_loss {reported:R}, reference {reference:R}");
            Assert.True(reference < Math.Log(37) - 0.3, $"validation loss {reference:F3}: the run did not train");
        }
    }
}
