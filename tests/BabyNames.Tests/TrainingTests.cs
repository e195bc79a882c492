using System.Text.Json;
using System.Text.RegularExpressions;

namespace BabyNames.Tests;

public class TrainingTests
{
    static (Corpus corpus, Examples train, Examples validation) Tiny(int K = 4, long seed = 1)
    {
        var corpus = Corpus.Split([.. TestData.SyllableNames], new Rng(seed, 1));
        return (corpus, new Examples(corpus.Train, corpus.Vocab, K), new Examples(corpus.Validation, corpus.Vocab, K));
    }

    [Fact]
    public void EvaluateIsTheMeanLossOverEveryExampleIncludingAPartialLastBatch()
    {
        var (model, ex) = GradientCheckTests.SmallModel(true); // batch 3, 13 examples: 4 full + 1
        Assert.Equal(13, ex.Count);
        var contexts = Enumerable.Range(0, ex.Count).Select(i => ex.Context(i).ToArray().Select(c => (int)c).ToArray()).ToArray();
        var targets = Enumerable.Range(0, ex.Count).Select(ex.Next).ToArray();

        double loss = Trainer.Evaluate(model, ex);

        Assert.Equal(Reference.ModelLoss(model, contexts, targets), loss, 1e-5);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AShortRunLowersValidationLoss(bool positional)
    {
        var (corpus, train, validation) = Tiny();
        var model = new Model(corpus.Vocab.Size, 4, 16, 32, positional, new Rng(1, 2));
        double untrained = Trainer.Evaluate(model, validation);
        double uniform = Math.Log(corpus.Vocab.Size);

        var result = Trainer.Train(model, train, 0.5f, 0, 300, new Rng(1, 3));
        double trained = Trainer.Evaluate(model, validation);

        Assert.Equal(300, result.Steps);
        Assert.True(float.IsFinite(result.TrainLoss));
        Assert.True(trained < untrained - 0.5, $"validation loss {untrained:F3} → {trained:F3}");
        Assert.True(trained < uniform - 0.5, $"validation loss {trained:F3}, guessing uniformly gives {uniform:F3}");
    }

    [Theory]
    [InlineData(true, 5)]
    [InlineData(false, 20)]
    public void PaddingStaysZeroThroughTraining(bool positional, int dim)
    {
        // V = 16 real logits of Vp = 16; dim 5 or 20 of width 16 or 32: the padding columns of
        // every table must still be exactly zero after training.
        var (corpus, train, _) = Tiny();
        var model = new Model(corpus.Vocab.Size, 4, dim, 16, positional, new Rng(1, 2));
        Trainer.Train(model, train, 0.5f, 0, 200, new Rng(1, 3));
        foreach (var table in new[] { model.Embedding, model.Weight })
            for (int r = 0; r < table.Rows; r++)
                for (int d = dim; d < model.Width; d++)
                    Assert.Equal(0f, table.Data[r * model.Width + d]);
        for (int j = model.V; j < model.Bias.Cols; j++) Assert.Equal(0f, model.Bias.Data[j]);
        Assert.Contains(model.Bias.Data.Take(model.V), b => b != 0); // the real columns did train
    }

    [Fact]
    public void PaddingLogitColumnsStayZeroWithAPartialVector()
    {
        // V = 6 → Vp = 16: ten padding logits whose bias must stay zero
        var (model, ex) = GradientCheckTests.SmallModel(true);
        for (int step = 0; step < 50; step++)
        {
            for (int s = 0; s < 3; s++) model.SetExample(s, ex, (step * 3 + s) % ex.Count);
            model.Loss(3).Back(1f);
            model.Step(0.5f);
        }
        for (int j = 6; j < 16; j++) Assert.Equal(0f, model.Bias.Data[j]);
        for (int r = 0; r < model.Weight.Rows; r++)
            for (int d = 4; d < 16; d++) Assert.Equal(0f, model.Weight.Data[r * 16 + d]);
    }

    [Fact]
    public void TrainingIsReproducible()
    {
        var (corpus, train, _) = Tiny();
        Model Trained()
        {
            var m = new Model(corpus.Vocab.Size, 4, 16, 8, true, new Rng(9, 2));
            Trainer.Train(m, train, 0.5f, 0, 50, new Rng(9, 3));
            return m;
        }
        var a = Trained();
        var b = Trained();
        for (int p = 0; p < 3; p++) Assert.Equal(a.Params[p].Data, b.Params[p].Data);
    }

    [Fact]
    public void TrainingForSecondsStopsOnAWholeNumberOfSixteenSteps()
    {
        var (corpus, train, _) = Tiny();
        var model = new Model(corpus.Vocab.Size, 4, 16, 8, true, new Rng(1, 2));
        var result = Trainer.Train(model, train, 0.5f, 0.01, null, new Rng(1, 3));
        Assert.Equal(0, result.Steps % 16);
        if (result.Steps > 0) Assert.True(float.IsFinite(result.TrainLoss));
    }

    [Theory]
    [InlineData(32)]
    [InlineData(1024)]
    public void TrainingAllocatesAlmostNothingPerStep(int batch)
    {
        var (corpus, train, _) = Tiny();
        var model = new Model(corpus.Vocab.Size, 4, 16, batch, true, new Rng(1, 2));
        Trainer.Train(model, train, 0.1f, 0, 5, new Rng(1, 3)); // warm up

        var result = Trainer.Train(model, train, 0.1f, 0, 100, new Rng(2, 3));

        Assert.Equal(100, result.Steps);
        Assert.InRange(result.AllocatedBytesPerStep, 0, 2047);
    }

    [Fact]
    public void DivergenceIsAUserErrorFromTheTrainer()
    {
        var (corpus, train, _) = Tiny();
        var model = new Model(corpus.Vocab.Size, 4, 16, 32, true, new Rng(1, 2));
        var e = Assert.Throws<UserError>(() => Trainer.Train(model, train, 1000f, 0, 10_000, new Rng(1, 3)));
        Assert.Equal(1, e.ExitCode);
        Assert.StartsWith("training diverged at step", e.Message);
    }

    [Fact]
    public void DivergenceOnTheCommandLine()
    {
        var r = Cli.Run("--lr", "1000", "--steps", "1000");
        var line = r.AssertOneError(1);
        Assert.StartsWith("error: training diverged at step", line);
        Assert.Contains("try a smaller --lr", line);
    }

    static int DivergedAtStep()
    {
        var line = Cli.Run("--lr", "1000", "--steps", "1000", "--samples", "0").AssertOneError(1);
        return int.Parse(Regex.Match(line, @"diverged at step (\d+)").Groups[1].Value);
    }

    // With --steps one short of where the run above diverges, the last update already breaks the
    // weights: the loss it leads to is never checked, the validation loss comes out NaN/Infinity.
    // Text mode then reports "NaN (validation)" with exit 0; JSON mode crashes: Utf8JsonWriter
    // throws ArgumentException on NaN, out of Program.Run (no "error:" line, no exit code).
    [Fact]
    public void DivergenceOnTheLastStepIsStillAnErrorInJson()
    {
        int step = DivergedAtStep();
        Assert.True(step > 1);
        var r = Cli.Run("--lr", "1000", "--steps", (step - 1).ToString(), "--samples", "3", "--json");
        if (r.Code == 0)
        {
            using var doc = JsonDocument.Parse(r.Out);
            Assert.True(double.IsFinite(doc.RootElement.GetProperty("val_loss").GetDouble()));
        }
        else
        {
            Assert.Contains("diverged", r.AssertOneError(1));
        }
    }

    [Fact]
    public void DivergenceOnTheLastStepIsStillAnErrorInText()
    {
        int step = DivergedAtStep();
        var r = Cli.Run("--lr", "1000", "--steps", (step - 1).ToString(), "--samples", "3");
        if (r.Code == 0)
        {
            var loss = Regex.Match(r.Out, @"Final loss: (\S+) \(train\) (\S+) \(validation\)");
            Assert.True(loss.Success, r.Out);
            Assert.True(double.TryParse(loss.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture, out double v) && double.IsFinite(v),
                $"validation loss printed as '{loss.Groups[2].Value}'");
        }
        else
        {
            Assert.Contains("diverged", r.AssertOneError(1));
        }
    }

    [Fact]
    public void CommandLineTrainingLowersValidationLoss()
    {
        using var file = new TempFile(TestData.SyllableNamesFile);
        double ValLoss(string steps)
        {
            var r = Cli.Run("--names", file.Path, "--steps", steps, "--samples", "0", "--json");
            r.AssertSuccess();
            using var doc = JsonDocument.Parse(r.Out);
            return doc.RootElement.GetProperty("val_loss").GetDouble();
        }
        double one = ValLoss("1"), many = ValLoss("300");
        Assert.True(many < one - 0.5, $"val_loss after 1 step {one:F3}, after 300 {many:F3}");
    }
}
