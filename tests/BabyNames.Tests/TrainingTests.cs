using System.Text.Json;
using System.Text.RegularExpressions;

namespace BabyNames.Tests;

/// <summary>Training: that it learns, keeps the padding at zero, evaluates every example, gives the
/// same result on any number of threads, follows its learning-rate schedule, keeps the best weights,
/// handles divergence, allocates almost nothing per step, and stops on Ctrl+C.</summary>
public class TrainingTests
{
    /// <summary>The syllable names split as a run splits them (V = 16).</summary>
    internal static (Corpus Corpus, Examples Train, Examples Validation) Syllables(int K = 4, long seed = 1)
    {
        var corpus = Corpus.Split([.. TestData.SyllableNames], new Rng(seed, 1));
        return (corpus, new Examples(corpus.Train, corpus.Vocab, K), new Examples(corpus.Validation, corpus.Vocab, K));
    }

    static Model Make(bool mlp, int V, int K, int D, int H, int batch, bool positional = true, long seed = 1) =>
        new(mlp ? ModelKind.Mlp : ModelKind.Bag, V, K, D, H, positional, batch, new Rng(seed, 2));

    /// <summary>Training by hand, one step as Trainer's documentation describes it (on one thread):
    /// the batch drawn with rng.Below(train.Count, picks), each shard's loss weighted by its share
    /// of the batch and backpropagated, the shards' gradients collected and the table's passed on,
    /// then one SGD step at rate(i) for step i (from 0). afterStep hears the number of steps done
    /// and the batch's mean loss.</summary>
    static void Replay(Model m, Examples train, long steps, Rng rng, Func<long, float> rate, Action<long, double>? afterStep = null)
    {
        var picks = new int[m.BatchSize];
        for (long i = 0; i < steps; i++)
        {
            rng.Below(train.Count, picks);
            double loss = GradientCheckTests.Pass(m, train, picks, backward: true);
            m.Step(rate(i), Trainer.DecayFor(train));
            afterStep?.Invoke(i + 1, loss);
        }
    }

    static float[][] Weights(Model m) => [.. m.Params.Select(p => (float[])p.Data.Clone())];

    /// <summary>The rate of step i (from 0) of a run of `steps`, as README describes the
    /// schedule: from a tenth up to lr over the first twentieth, lr, then a tenth for the last fifth.</summary>
    static Func<long, float> Documented(float lr, long steps) => i =>
    {
        double done = (double)i / steps;
        return (float)(done < 0.05 ? lr * (0.1 + 0.9 * done / 0.05) : done < 0.8 ? lr : lr * 0.1);
    };

    static void AssertSameWeights(float[][] expected, Model m)
    {
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], m.Params[i].Data);
    }

    // ---------------------------------------------------------------------------------------------
    // It learns

    [Theory]
    [InlineData(false, true, 32)]
    [InlineData(false, false, 32)]
    [InlineData(true, true, 32)] // the MLP's table (B > V = 16)
    [InlineData(true, true, 8)]  // the MLP per example
    public void AShortRunLowersValidationLoss(bool mlp, bool positional, int batch)
    {
        var (corpus, train, validation) = Syllables();
        var model = Make(mlp, corpus.Vocab.Size, 4, 16, 32, batch, positional);
        Assert.Equal(mlp && batch > 16, model.UsesTable);
        double untrained = Trainer.Evaluate(model, validation);
        double uniform = Math.Log(corpus.Vocab.Size);

        var result = Trainer.Train(model, train, validation, new TrainOptions(0.5f, Steps: 300), new Rng(1, 3));
        double trained = Trainer.Evaluate(model, validation);

        Assert.Equal(300, result.Steps);
        Assert.True(float.IsFinite(result.TrainLoss));
        Assert.Null(result.DivergedAt);
        Assert.False(result.StoppedEarly);
        Assert.Equal(trained, result.ValidationLoss); // the model ends with the weights it reports on
        Assert.True(trained < untrained - 0.5, $"validation loss {untrained:F3} → {trained:F3}");
        Assert.True(trained < uniform - 0.5, $"validation loss {trained:F3}, guessing uniformly gives {uniform:F3}");
    }

    [Theory]
    [InlineData(false, true, 5, 0, 130)]
    [InlineData(false, false, 20, 0, 130)]
    [InlineData(true, true, 5, 20, 130)] // the table
    [InlineData(true, true, 5, 20, 30)]  // per example
    public void PaddingStaysZeroThroughTraining(bool mlp, bool positional, int D, int H, int batch)
    {
        // V = 37 (Vr = 40, Vp = 48), D = 5 or 20 of Dp = 16 or 32, H = 20 of Hp = 32
        var (vocab, examples) = GradientCheckTests.ExamplesOver(36, 3);
        var model = Make(mlp, vocab.Size, 3, D, H, batch, positional);
        var before = Weights(model);
        Trainer.Train(model, examples, examples, new TrainOptions(0.5f, Steps: 100), new Rng(1, 3));

        int V = vocab.Size, K = 3, Dp = model.Dp, Hp = model.Hp, width = mlp ? H : D;
        void AssertZero(Param p, Func<int, int, bool> real, string name)
        {
            for (int r = 0; r < p.Rows; r++)
                for (int c = 0; c < p.Cols; c++)
                    if (!real(r, c)) Assert.True(p.Data[r * p.Cols + c] == 0f, $"{name}[{r},{c}] = {p.Data[r * p.Cols + c]}");
        }
        AssertZero(model.Embedding, (r, c) => c < D, "E");
        AssertZero(model.OutputWeights, (r, c) => r < V && c < width, "W");
        AssertZero(model.OutputBias, (r, c) => c < V, "b");
        if (mlp)
        {
            AssertZero(model.HiddenWeights!, (r, c) => r < H && c % Dp < D, "W1");
            AssertZero(model.HiddenBias!, (r, c) => c < H, "b1");
            Assert.Equal(K * Dp, model.HiddenWeights!.Cols);
            Assert.True(Hp > H);
        }
        // the real parts did train
        for (int i = 0; i < before.Length; i++) Assert.NotEqual(before[i], model.Params[i].Data);
    }

    [Fact]
    public void TrainingForSecondsStopsOnAWholeNumberOfSixteenStepsAtTheEnd()
    {
        // the clock is read every 16 steps: a run for seconds ends on such a step, once the time is up
        var (corpus, train, validation) = Syllables();
        var model = Make(false, corpus.Vocab.Size, 4, 16, 0, 8);
        var result = Trainer.Train(model, train, validation, new TrainOptions(0.5f, Seconds: 0.02), new Rng(1, 3));
        Assert.Equal(0, result.Steps % 16);
        Assert.True(result.Steps >= 16);
        Assert.True(result.Seconds >= 0.02);
        Assert.True(result.Checks >= 1 && result.BestStep >= 1 && result.BestStep <= result.Steps);
        Assert.Equal(result.ValidationLoss, Trainer.Evaluate(model, validation));
    }

    // ---------------------------------------------------------------------------------------------
    // Evaluate

    [Theory]
    [InlineData(false, GradientCheckTests.TwoShards)] // through the first shard, ShardExamples + 1 at a time
    [InlineData(true, 130)]  // the table
    [InlineData(true, 31)]   // per example
    public void EvaluateIsTheMeanLossOverEveryExampleIncludingAPartialLastBatch(bool mlp, int batch)
    {
        var (vocab, examples) = GradientCheckTests.ExamplesOver(36, 3);
        var model = Make(mlp, vocab.Size, 3, 16, 48, batch);
        GradientCheckTests.RandomizeOutput(model, new Random(2));
        Assert.NotEqual(0, examples.Count % model.Shards[0].Count);
        var (contexts, targets) = Reference.Unpack(examples);

        double loss = Trainer.Evaluate(model, examples);

        double expected = Reference.ModelLoss(model, contexts, targets);
        Assert.True(Math.Abs(loss - expected) <= 1e-6 * expected, $"{loss:R} vs {expected:R}");
    }

    // ---------------------------------------------------------------------------------------------
    // Determinism on any number of threads

    [Theory]
    [InlineData(false, 15, 8 * Model.ShardExamples)] // the bag, 8 shards (three threads take 3, 3 and 2 of them)
    [InlineData(true, 15, 4 * Model.ShardExamples)]  // the MLP's table, 4 shards
    [InlineData(true, 255, 2 * Model.ShardExamples)] // the MLP per example (V = 256), 2 shards
    public void TheSameSeedAndStepsGiveTheSameRunOnAnyNumberOfThreads(bool mlp, int letters, int batch)
    {
        var (vocab, examples) = GradientCheckTests.ExamplesOver(letters, 4);
        (TrainResult, float[][]) Run(int threads)
        {
            var model = Make(mlp, vocab.Size, 4, 16, 32, batch, seed: 5);
            Assert.Equal(mlp && batch > vocab.Size, model.UsesTable);
            var result = Trainer.Train(model, examples, examples, new TrainOptions(0.5f, Steps: 40, Threads: threads), new Rng(5, 3));
            return (result, Weights(model));
        }
        var (one, weights) = Run(1);
        int shards = Math.Clamp(batch / Model.ShardExamples, 1, Model.MaxShards);
        Assert.Equal(1, one.Threads);
        foreach (int threads in new[] { 2, 3, 8 })
        {
            var (other, otherWeights) = Run(threads);
            Assert.Equal(Math.Min(threads, shards), other.Threads);
            for (int i = 0; i < weights.Length; i++) Assert.Equal(weights[i], otherWeights[i]);
            Assert.Equal((one.Steps, one.TrainLoss, one.ValidationLoss, one.BestStep, one.Checks, one.DivergedAt),
                (other.Steps, other.TrainLoss, other.ValidationLoss, other.BestStep, other.Checks, other.DivergedAt));
            Assert.Equal(one.LossCurve, other.LossCurve);
        }
    }

    /// <summary>Fields of --json that measure the run rather than its result.</summary>
    static readonly string[] MeasuredFields = ["seconds", "examples_per_second", "check_seconds", "startup_seconds", "alloc_bytes_per_step", "threads",
        "macs_per_example"]; // every thread makes the MLP's table: the multiply-adds done grow with them

    [Fact]
    public void TheCommandLineGivesTheSameRunOnAnyNumberOfThreads()
    {
        // --batch-size 512: four shards. Everything but the measurements (time, speed, the bytes
        // the runtime counted, the threads used) is the same, and so are the saved models.
        using var names = new TempFile(TestData.SyllableNamesFile);
        using var folder = new TempDir();
        string? first = null;
        byte[]? firstModel = null;
        foreach (var threads in new[] { 1, 2, 3, 8 })
        {
            string saved = folder.File($"model-{threads}.bin");
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            int code = Program.Run(["--names", names.Path, "--steps", "30", "--batch-size", (4 * Model.ShardExamples).ToString(), "--threads", threads.ToString(),
                "--seed", "11", "--samples", "8", "--json", "--save", saved], stdout, stderr);
            Assert.True(code == 0, stderr.ToString());
            using var json = JsonDocument.Parse(stdout.ToString());
            var root = json.RootElement;
            Assert.Equal(Math.Min(threads, 4), root.GetProperty("threads").GetInt32());
            Assert.Equal(threads, root.GetProperty("options").GetProperty("threads").GetInt32());
            Assert.Equal(30, root.GetProperty("steps").GetInt64());
            var node = System.Text.Json.Nodes.JsonNode.Parse(stdout.ToString())!.AsObject();
            foreach (var field in MeasuredFields) Assert.True(node.Remove(field), field);
            node["options"]!.AsObject().Remove("threads");
            node.Remove("saved");
            node["options"]!.AsObject().Remove("save");
            string rest = node.ToJsonString();
            var model = File.ReadAllBytes(saved);
            if (first is null) (first, firstModel) = (rest, model);
            else
            {
                Assert.Equal(first, rest);
                Assert.Equal(firstModel, model);
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // The learning-rate schedule

    [Fact]
    public void TheRateWarmsUpOverATwentiethIsFullUntilFourFifthsAndATenthAfter()
    {
        Assert.Equal(0.05, Trainer.WarmUpTo);
        Assert.Equal(0.8, Trainer.DecayFrom);
        Assert.Equal(0.1, Trainer.SlowFactor);
        Assert.Equal(0.05f, Trainer.RateAt(0.5f, 0), 1e-7f);     // a tenth at the start
        Assert.Equal(0.275f, Trainer.RateAt(0.5f, 0.025), 1e-7f); // halfway up: 0.1 + 0.9 · 0.5
        Assert.Equal(0.5f, Trainer.RateAt(0.5f, 0.05));
        Assert.Equal(0.5f, Trainer.RateAt(0.5f, 0.5));
        Assert.Equal(0.5f, Trainer.RateAt(0.5f, 0.7999));
        Assert.Equal(0.05f, Trainer.RateAt(0.5f, 0.8));
        Assert.Equal(0.05f, Trainer.RateAt(0.5f, 0.95));
        Assert.Equal(0.05f, Trainer.RateAt(0.5f, 1.0));
        Assert.Equal(2e-4f, Trainer.RateAt(2e-3f, 0.9), 1e-10f);
    }

    [Theory]
    [InlineData(false, 4, 0)]   // step i runs at i/n done: 0, .25, .5, .75: only the first warms up, no step slowed
    [InlineData(false, 5, 1)]   // 0, .2, .4, .6, .8: the last step at a tenth
    [InlineData(false, 10, 2)]  // the last two
    [InlineData(false, 40, 8)]  // 0, .025: two steps warm up, at 0.1 and 0.55 of the rate
    [InlineData(true, 10, 2)]   // the MLP's table, two shards (GradientCheckTests.TwoShards)
    public void AStepsRunWarmsUpAndRunsItsLastFifthAtATenthOfTheRate(bool mlp, int steps, int decayed)
    {
        const float lr = 0.5f;
        var (corpus, train, validation) = Syllables();
        var trained = Make(mlp, corpus.Vocab.Size, 4, 16, 32, mlp ? GradientCheckTests.TwoShards : 130);
        var result = Trainer.Train(trained, train, validation, new TrainOptions(lr, Steps: steps), new Rng(2, 3));
        Assert.Equal(steps, result.BestStep); // a few small steps from the start only get better: the final weights are kept

        // by hand: the steps in the first twentieth rise from lr/10 to lr, the last `decayed` at lr/10
        var byHand = Make(mlp, corpus.Vocab.Size, 4, 16, 32, mlp ? GradientCheckTests.TwoShards : 130);
        Replay(byHand, train, steps, new Rng(2, 3), i => (double)i / steps < 0.05 ? (float)(lr * (0.1 + 0.9 * i / (steps * 0.05)))
            : i >= steps - decayed ? lr / 10 : lr);
        AssertSameWeights(Weights(byHand), trained);

        if (decayed > 0)
        {
            // and not all at the full rate
            var undecayed = Make(mlp, corpus.Vocab.Size, 4, 16, 32, mlp ? GradientCheckTests.TwoShards : 130);
            Replay(undecayed, train, steps, new Rng(2, 3), i => i == 0 ? lr / 10 : lr);
            Assert.NotEqual(Weights(undecayed)[0], trained.Params[0].Data);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Keeping the best weights

    [Fact]
    public void AnOverfittingRunEndsWithTheWeightsOfItsBestCheck()
    {
        // 20 names (18 to train on, 2 to validate with: 7 examples) and a high rate: the
        // validation loss falls for a while, then rises as the model learns the 18 names by heart.
        // B = 128 makes every step a check.
        const int steps = 300;
        const float lr = 2f;
        var corpus = Corpus.Split([.. TestData.TinyNames.Take(20)], new Rng(1, 1));
        var train = new Examples(corpus.Train, corpus.Vocab, 3);
        var validation = new Examples(corpus.Validation, corpus.Vocab, 3);
        var model = Make(false, corpus.Vocab.Size, 3, 16, 0, 128);

        var result = Trainer.Train(model, train, validation, new TrainOptions(lr, Steps: steps), new Rng(1, 3));

        // the same run by hand, the validation loss after every step
        var byHand = Make(false, corpus.Vocab.Size, 3, 16, 0, 128);
        var losses = new double[steps + 1];
        var trainLosses = new double[steps + 1];
        float[][]? bestWeights = null;
        double best = double.PositiveInfinity;
        Replay(byHand, train, steps, new Rng(1, 3), Documented(lr, steps), (step, loss) =>
        {
            trainLosses[step] = loss;
            losses[step] = Trainer.Evaluate(byHand, validation);
            if (losses[step] < best) (best, bestWeights) = (losses[step], Weights(byHand));
        });
        long bestStep = Array.IndexOf(losses, best);

        Assert.Equal(steps, result.Steps);
        Assert.Equal(steps, result.Checks); // every step was checked
        Assert.Equal(bestStep, result.BestStep);
        Assert.True(result.BestStep < steps / 2, $"best step {result.BestStep}");
        Assert.True(losses[steps] > best + 0.1, $"validation loss {best:F3} at step {bestStep}, {losses[steps]:F3} at the end: no overfitting");
        Assert.Equal(best, result.ValidationLoss);
        Assert.Equal(result.ValidationLoss, Trainer.Evaluate(model, validation)); // the model holds those weights
        AssertSameWeights(bestWeights!, model);
        // the train loss is that of the stretch since the previous check: here the best step's own
        Assert.Equal(trainLosses[bestStep], result.TrainLoss, 1e-5);
        // the loss curve: the mean training loss of each fortieth of the run
        for (int point = 0; point < Trainer.CurvePoints; point++)
        {
            var stretch = Enumerable.Range(1, steps).Where(s => (s - 1) * Trainer.CurvePoints / steps == point).Select(s => trainLosses[s]).ToArray();
            Assert.Equal(stretch.Average(), result.LossCurve[point], 1e-5);
        }
    }

    [Fact]
    public void DivergenceBeforeAnyCheckIsAUserError()
    {
        // checks every 1,000-odd steps (the whole training set as validation, B = 8); the weights
        // overflow within a few steps at this rate
        var (corpus, train, _) = Syllables();
        var model = Make(false, corpus.Vocab.Size, 4, 16, 0, 8);
        var e = Assert.Throws<UserError>(() => Trainer.Train(model, train, train, new TrainOptions(1e6f, Steps: 1000), new Rng(1, 3)));
        Assert.Equal(1, e.ExitCode);
        Assert.Matches(@"^training diverged at step \d+ \(loss = (NaN|Infinity)\); try a smaller --lr$", e.Message);
        Assert.InRange(int.Parse(Regex.Match(e.Message, @"step (\d+)").Groups[1].Value), 2, 50);
    }

    [Fact]
    public void ANonFiniteLossAtStepOneIsAUserError()
    {
        var (corpus, train, validation) = Syllables();
        var model = Make(false, corpus.Vocab.Size, 4, 16, 0, 32);
        model.OutputBias.Data[3] = float.NaN; // every prediction is NaN from the start
        var e = Assert.Throws<UserError>(() => Trainer.Train(model, train, validation, new TrainOptions(0.1f, Steps: 10), new Rng(1, 3)));
        Assert.Equal(1, e.ExitCode);
        Assert.Equal("training diverged at step 1 (loss = NaN); try a smaller --lr", e.Message);
    }

    [Fact]
    public void ANonFiniteValidationLossAtTheFirstCheckIsAUserError()
    {
        // A letter that only the validation names have: training never reads its rows of E, so
        // with those rows NaN training goes on, but the first check (after step 1) measures NaN.
        string[] training = ["anna", "dana", "nadia", "ada", "nina", "dina", "ian", "ina"], validating = ["zed"];
        var vocab = new Vocabulary([.. training, .. validating]);
        var train = new Examples(training, vocab, 3);
        var validation = new Examples(validating, vocab, 3);
        int z = vocab.Encode("z")[0];
        var model = Make(false, vocab.Size, 3, 16, 0, 64);
        for (int k = 0; k < 3; k++) Array.Fill(model.Embedding.Data, float.NaN, (k * vocab.Size + z) * 16, 16);

        var e = Assert.Throws<UserError>(() => Trainer.Train(model, train, validation, new TrainOptions(0.1f, Steps: 10), new Rng(1, 3)));
        Assert.Equal(1, e.ExitCode);
        Assert.Equal("training diverged by step 1 (validation loss = NaN); try a smaller --lr", e.Message);
    }

    [Fact]
    public void DivergenceAfterChecksKeepsTheBestWeights()
    {
        // the bag at lr 100, checked every 4 steps: its weights overflow after two checks
        const float lr = 100f;
        var (corpus, train, validation) = Syllables();
        var model = Make(false, corpus.Vocab.Size, 4, 16, 0, 256);

        var result = Trainer.Train(model, train, validation, new TrainOptions(lr, Steps: 1000), new Rng(1, 3));

        Assert.NotNull(result.DivergedAt);
        Assert.Equal(result.DivergedAt, result.Steps);
        Assert.True(result.Checks >= 2, $"{result.Checks} checks");
        Assert.True(result.BestStep < result.Steps);
        Assert.All(model.Params, p => Assert.True(Array.TrueForAll(p.Data, float.IsFinite)));
        Assert.Equal(result.ValidationLoss, Trainer.Evaluate(model, validation));
        // the weights are those of the best step: replayed by hand
        var byHand = Make(false, corpus.Vocab.Size, 4, 16, 0, 256);
        float[][]? atBest = null;
        Replay(byHand, train, result.BestStep, new Rng(1, 3), Documented(lr, 1000), (step, _) => { if (step == result.BestStep) atBest = Weights(byHand); });
        AssertSameWeights(atBest!, model);
    }

    // ---------------------------------------------------------------------------------------------
    // Ctrl+C

    [Fact]
    public void InterruptedBeforeTrainingExitsWith130AndSavesNothing()
    {
        using var names = new TempFile(TestData.SyllableNamesFile);
        using var folder = new TempDir();
        string saved = folder.File("model.bin");
        using var stop = new CancellationTokenSource();
        stop.Cancel();
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        bool started = false;

        int code = Program.Run(["--names", names.Path, "--steps", "10", "--save", saved], stdout, stderr, stop.Token, s => started |= s);

        Assert.Equal(130, code);
        Assert.Equal("", stdout.ToString());
        Assert.Equal("error: interrupted before training started; nothing was saved" + Environment.NewLine, stderr.ToString());
        Assert.False(started);
        Assert.False(File.Exists(saved));
        Assert.Empty(Directory.GetFiles(folder.Path)); // no temporary file left either
    }

    /// <summary>A run of a billion steps whose token `onStart` cancels (at once, or later) when
    /// training starts: its exit code, JSON and saved model.</summary>
    static (int Code, JsonElement Json, Trained Saved) Interrupted(Action<CancellationTokenSource> onStart)
    {
        using var names = new TempFile(TestData.SyllableNamesFile);
        using var folder = new TempDir();
        string saved = folder.File("model.bin");
        using var stop = new CancellationTokenSource();
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        int code = Program.Run(["--names", names.Path, "--steps", "1000000000", "--samples", "6", "--json", "--save", saved],
            stdout, stderr, stop.Token, started => { if (started) onStart(stop); });
        Assert.True(code == 0, stderr.ToString());
        using var json = JsonDocument.Parse(stdout.ToString());
        return (code, json.RootElement.Clone(), ModelFile.Load(saved));
    }

    [Fact]
    public void ACancelledTokenStopsTrainingAfterAtLeastOneStep()
    {
        // Ctrl+C as soon as training starts: one step, then the run saves and samples as usual
        var (_, root, saved) = Interrupted(stop => stop.Cancel());
        Assert.True(root.GetProperty("stopped_early").GetBoolean());
        Assert.Equal(1, root.GetProperty("steps").GetInt64());
        Assert.Equal(6, root.GetProperty("samples").GetArrayLength());
        Assert.Equal(1, saved.Steps);
    }

    [Fact]
    public void ATokenCancelledDuringTrainingStopsItEarlyAndTheRunStillSamples()
    {
        // a billion steps would take hours: a timer cancels them a fifth of a second in
        var (_, root, saved) = Interrupted(stop => stop.CancelAfter(200));
        Assert.True(root.GetProperty("stopped_early").GetBoolean());
        long steps = root.GetProperty("steps").GetInt64();
        Assert.InRange(steps, 1, 999_999_999);
        Assert.Equal(6, root.GetProperty("samples").GetArrayLength());
        Assert.True(double.IsFinite(root.GetProperty("val_loss").GetDouble()));
        Assert.Equal(steps, saved.Steps);
        Assert.Equal(root.GetProperty("best_step").GetInt64(), saved.BestStep);
    }

    [Fact]
    public void TrainerStopsWhenItsTokenIsCancelledAndKeepsItsBest()
    {
        var (corpus, train, validation) = Syllables();
        var model = Make(true, corpus.Vocab.Size, 4, 16, 32, 64);
        using var stop = new CancellationTokenSource();
        long heard = 0;
        var result = Trainer.Train(model, train, validation, new TrainOptions(0.5f, Steps: 1_000_000_000), new Rng(1, 3), stop.Token,
            (step, elapsed, loss) =>
            {
                // the progress callback: a few times a second, with the step, the time and the loss
                Assert.True(step > heard && elapsed >= 0.25 && float.IsFinite(loss));
                heard = step;
                stop.Cancel();
            });
        Assert.True(result.StoppedEarly);
        Assert.True(heard > 0);
        Assert.InRange(result.Steps, heard, heard + 1); // at the end of the step that heard it, or of the next
        Assert.Equal(result.ValidationLoss, Trainer.Evaluate(model, validation));
        Assert.True(result.ValidationLoss < Math.Log(corpus.Vocab.Size) - 0.5);
    }
}

/// <summary>Allocation is measured over the whole process (GC.GetTotalAllocatedBytes), so these
/// tests run alone, after the tests that run in parallel.</summary>
[CollectionDefinition(nameof(TrainingAllocationCollection), DisableParallelization = true)]
public class TrainingAllocationCollection { }

[Collection(nameof(TrainingAllocationCollection))]
public class TrainingAllocationTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TrainingAllocatesOnlyItsNodesPerStep(bool mlp)
    {
        // A step allocates its nodes and their backpropagators, nothing per example: per shard five
        // primitives at most (gather, sum or matmul, tanh, matmul, softmax), each a node, a closure
        // and a delegate of about 150 bytes together, so under 1 KB a shard, and the table's
        // matmul and leaf once a step. The bound asserted: 1 KB per shard plus 1 KB, and the same
        // count at two batches of MaxShards shards each, which a byte per example would break.
        // The count is the whole process's: the lower of two runs leaves out whatever else (the
        // test runner) may allocate meanwhile, which can only add to it.
        var (corpus, train, validation) = TrainingTests.Syllables();
        long PerStep(int batch, int steps)
        {
            var model = new Model(mlp ? ModelKind.Mlp : ModelKind.Bag, corpus.Vocab.Size, 4, 16, 64, true, batch, new Rng(1, 2));
            Trainer.Train(model, train, validation, new TrainOptions(0.1f, Steps: 20), new Rng(1, 3)); // warm-up
            return Enumerable.Range(0, 2).Min(run =>
                Trainer.Train(model, train, validation, new TrainOptions(0.1f, Steps: steps), new Rng(2 + run, 3)).AllocatedBytesPerStep);
        }
        const int full = Model.MaxShards * Model.ShardExamples;
        long small = PerStep(64, 2000), half = PerStep(full, 500), large = PerStep(2 * full, 250);
        Assert.InRange(small, 0, 1024 * (1 + 1));
        Assert.InRange(half, 0, 1024 * (Model.MaxShards + 1));
        Assert.InRange(large, 0, 1024 * (Model.MaxShards + 1));
        Assert.True(Math.Abs(large - half) <= 256, $"{half} bytes a step at B = {full}, {large} at B = {2 * full}");
    }
}
