using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace BabyNames.Tests;

/// <summary>The built app run under other programs (a shell, `script`, `env`): through its own
/// launcher, BabyNames, which the build puts beside BabyNames.dll.</summary>
internal static class BuiltApp
{
    public static string Host
    {
        get
        {
            var path = Path.Combine(AppContext.BaseDirectory, "BabyNames");
            Assert.True(File.Exists(path), $"{path} is missing");
            return path;
        }
    }

    public static string Quote(string text) => "'" + text.Replace("'", "'\\''") + "'";

    public static string Quoted => Quote(Host);

    /// <summary>Starts a program with its output redirected (and its input, if asked).</summary>
    public static Process Start(string program, IEnumerable<string> args, bool redirectInput = false, IDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = redirectInput,
            UseShellExecute = false, WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        if (environment is not null) foreach (var (k, v) in environment) start.Environment[k] = v;
        return Process.Start(start)!;
    }

    /// <summary>Runs a shell command line to the end (60 s at most).</summary>
    public static CliResult Shell(string command, IDictionary<string, string>? environment = null)
    {
        using var shell = Start("/bin/sh", ["-c", command], redirectInput: true, environment);
        shell.StandardInput.Close();
        var output = shell.StandardOutput.ReadToEndAsync();
        var errors = shell.StandardError.ReadToEndAsync();
        if (!shell.WaitForExit(60_000))
        {
            shell.Kill(entireProcessTree: true);
            Assert.Fail($"'{command}' did not finish");
        }
        return new(shell.ExitCode, output.Result, errors.Result);
    }
}

/// <summary>The progress line on a terminal, and Ctrl+C.</summary>
public class TerminalTests
{
    // ---------------------------------------------------------------------------------------------
    // Progress

    /// <summary>The progress lines a run under a pseudo-terminal of the given width showed: the
    /// text after each "\r\x1b[K" that starts with "step ", up to the next control character.</summary>
    static List<string> ProgressLines(int columns, out CliResult run)
    {
        // `script` gives the app a terminal; stty sets its width, and COLUMNS says the same
        string inner = $"stty cols {columns} rows 24; exec {BuiltApp.Quoted} --seconds 0.8 --samples 2";
        run = BuiltApp.Shell($"script -qefc {BuiltApp.Quote(inner)} /dev/null",
            new Dictionary<string, string> { ["COLUMNS"] = columns.ToString(CultureInfo.InvariantCulture), ["TERM"] = "xterm" });
        Assert.True(run.Code == 0, $"exit code {run.Code}: {run.Out} {run.Err}");
        return [.. run.Out.Split("\r\x1b[K").Where(s => s.StartsWith("step ", StringComparison.Ordinal))
            .Select(s => new string([.. s.TakeWhile(c => !char.IsControl(c))]))];
    }

    [Fact]
    public void TheProgressLineFitsTheTerminal()
    {
        var narrow = ProgressLines(40, out var run);
        Assert.NotEmpty(narrow); // 0.8 s of training shows a few
        Assert.All(narrow, line => Assert.True(line.Length <= 40, $"{line.Length} columns: '{line}'"));
        Assert.Equal(2, Output.TextSamples(run.Out.Replace("\r\n", "\n")).Count);

        // on a wide terminal the same line is whole: the narrow one was cut to fit
        var wide = ProgressLines(200, out _);
        Assert.NotEmpty(wide);
        Assert.All(wide, line => Assert.Matches(@"^step [\d,]+  \d+\.\d\d M examples/s  loss \d+\.\d{3}  \d+\.\d s left$", line));
        Assert.True(wide.Max(l => l.Length) > 40);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void NothingGoesToStderrInProcess(bool json)
    {
        string[] args = ["--steps", "300", "--samples", "3"];
        var r = Cli.Run(json ? [.. args, "--json"] : args);
        r.AssertSuccess();
        // nor did any of it end up on stdout
        Assert.DoesNotContain("\r", r.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b", r.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("\u2581", r.Out, StringComparison.Ordinal); // the sparkline's lowest block
        Assert.DoesNotContain("examples/s  loss", r.Out);
    }

    [Fact]
    public void TheBuiltAppWritesNothingToARedirectedStderr()
    {
        var r = App.Run(["--seconds", "0.6", "--samples", "3"]);
        r.AssertSuccess(); // stderr empty: no progress line, no sparkline
        Assert.Equal(3, Output.TextSamples(r.Out).Count);
        Assert.DoesNotContain("\u001b", r.Out, StringComparison.Ordinal);
    }

    // ---------------------------------------------------------------------------------------------
    // Ctrl+C, in process: the token and the training callback

    [Fact]
    public void CtrlCBeforeTrainingQuitsWithExitCode130AndSavesNothing()
    {
        using var dir = new TempDir();
        var model = dir.File("model.bin");
        File.WriteAllText(model, "an older model");
        var written = File.GetLastWriteTimeUtc(model);
        bool trained = false;
        var r = InProcess.Run(["--seconds", "3600", "--samples", "3", "--save", model], new CancellationToken(canceled: true), _ => trained = true);
        var line = r.AssertOneError(130);
        Assert.Contains("interrupted", line);
        Assert.False(trained);
        Assert.Equal("an older model", File.ReadAllText(model));
        Assert.Equal(written, File.GetLastWriteTimeUtc(model));
        Assert.Equal(["model.bin"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void CtrlCDuringTrainingStopsItAndTheRunStillSamplesAndSaves(bool json)
    {
        using var dir = new TempDir();
        var model = dir.File("model.bin");
        using var stop = new CancellationTokenSource();
        // Ctrl+C as soon as training starts: an hour of training ends after its first steps
        string[] args = ["--seconds", "3600", "--samples", "3", "--save", model];
        var r = InProcess.Run(json ? [.. args, "--json"] : args, stop.Token, started => { if (started) stop.Cancel(); });
        Assert.True(r.Code == 0, r.Err);
        var saved = ModelFile.Load(model);
        Assert.InRange(saved.Steps, 1, 100);
        if (json)
        {
            var o = r.Json();
            Assert.True(o.GetProperty("stopped_early").GetBoolean());
            Assert.Equal(3, Output.JsonSamples(o).Count);
            Assert.Equal(saved.Steps, o.GetProperty("steps").GetInt64());
            Assert.Equal(model, o.GetProperty("saved").GetString());
            Assert.True(double.IsFinite(o.GetProperty("val_loss").GetDouble()));
        }
        else
        {
            Assert.Equal("", r.Err);
            Assert.Matches(@"^Elapsed: \d+\.\d{3} seconds \(stopped early with Ctrl\+C\)$", r.OutLines[1]);
            Assert.Equal(3, Output.TextSamples(r.Out).Count);
            Assert.Equal($"Saved model to {model}", r.OutLines[^1]);
        }
    }

    [Fact]
    public void WithoutCtrlCTheRunIsNotStoppedEarly()
    {
        Assert.False(Cli.Run("--steps", "20", "--samples", "1", "--json").Json().GetProperty("stopped_early").GetBoolean());
        Assert.DoesNotContain("stopped early", Cli.Run("--steps", "20", "--samples", "1").OutLines[1]);
    }

    // ---------------------------------------------------------------------------------------------
    // Ctrl+C, end to end: SIGINT to the built app

    const ulong SigInt = 1UL << (2 - 1);

    /// <summary>A signal mask of a process from /proc (SigIgn, SigCgt, ...); bit n−1 is signal n.</summary>
    static ulong SignalMask(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return ulong.Parse(line[(field.Length + 1)..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        return 0;
    }

    /// <summary>The app with SIGINT at its default: a process started with SIGINT ignored (by a
    /// shell without job control, say) passes that on to its children, and .NET leaves it so.</summary>
    static Process StartWithSigint(bool redirectInput, params string[] args) =>
        BuiltApp.Start("env", ["--default-signal=INT", BuiltApp.Host, .. args], redirectInput);

    static async Task WaitUntil(Process app, Func<bool> ready, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!app.HasExited && !ready() && clock.Elapsed < TimeSpan.FromSeconds(20)) await Task.Delay(20);
        Assert.False(app.HasExited, $"the program ended before {what}");
        Assert.True(ready(), $"not {what} after 20 s");
    }

    static void Interrupt(Process app)
    {
        using var kill = Process.Start("kill", ["-INT", app.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    /// <summary>Whether the app is training: its crew's worker thread is named "BabyNames crew 1"
    /// (cut to 15 characters by Linux), and the crew starts with training.</summary>
    static bool Training(Process app) =>
        Directory.GetDirectories($"/proc/{app.Id}/task").Any(task =>
        {
            try { return File.ReadAllText(Path.Combine(task, "comm")).StartsWith("BabyNames crew", StringComparison.Ordinal); }
            catch (IOException) { return false; } // a thread that just ended
        });

    [Fact]
    public async Task SigintDuringTrainingStopsItAndTheAppStillSamplesAndSaves()
    {
        Assert.True(OperatingSystem.IsLinux(), "this test sends SIGINT and reads /proc");
        using var dir = new TempDir();
        var model = dir.File("model.bin");
        using var app = StartWithSigint(false, "--seconds", "60", "--samples", "3", "--threads", "2", "--save", model);
        var stdout = app.StandardOutput.ReadToEndAsync();
        var stderr = app.StandardError.ReadToEndAsync();
        try
        {
            await WaitUntil(app, () => Training(app) && (SignalMask(app.Id, "SigCgt") & SigInt) != 0, "training started");
            Interrupt(app);
            Assert.True(app.WaitForExit(20_000), "the program did not finish within 20 s of SIGINT");
            var (output, errors) = (await stdout, await stderr);
            Assert.True(app.ExitCode == 0, $"exit code {app.ExitCode}; stderr: {errors}");
            Assert.Equal("", errors);
            var lines = output.Replace("\r\n", "\n").TrimEnd('\n').Split('\n');
            Assert.Matches(@"^Elapsed: \d+\.\d{3} seconds \(stopped early with Ctrl\+C\)$", lines[1]);
            Assert.Equal(3, Output.TextSamples(output).Count);
            Assert.Equal($"Saved model to {model}", lines[^1]);
            var steps = long.Parse(System.Text.RegularExpressions.Regex.Match(lines[2], @"^Steps: ([\d,]+) ").Groups[1].Value,
                NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
            Assert.Equal(steps, ModelFile.Load(model).Steps);
        }
        finally { if (!app.HasExited) app.Kill(entireProcessTree: true); }
    }

    [Fact]
    public async Task SigintBeforeTrainingQuitsAtOnceWithExitCode130AndSavesNothing()
    {
        Assert.True(OperatingSystem.IsLinux(), "this test sends SIGINT and reads /proc");
        using var dir = new TempDir();
        var model = dir.File("model.bin");
        File.WriteAllText(model, "an older model");
        // the app waits for its names on standard input, which stays open: it cannot have started training
        using var app = StartWithSigint(true, "--names", "-", "--steps", "5", "--samples", "3", "--save", model);
        var stdout = app.StandardOutput.ReadToEndAsync();
        var stderr = app.StandardError.ReadToEndAsync();
        try
        {
            app.StandardInput.Write("anna\nbob\n"); // some names, and no end yet
            app.StandardInput.Flush();
            await WaitUntil(app, () => (SignalMask(app.Id, "SigCgt") & SigInt) != 0, "it caught SIGINT");
            await Task.Delay(300); // and reached the read
            Interrupt(app);
            Assert.True(app.WaitForExit(20_000), "the program did not quit within 20 s of SIGINT");
            Assert.Equal(130, app.ExitCode);
            Assert.Equal("", await stdout);
            Assert.DoesNotContain("internal error", await stderr);
            Assert.Equal("an older model", File.ReadAllText(model));
            Assert.Equal(["model.bin"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
        }
        finally { if (!app.HasExited) app.Kill(entireProcessTree: true); }
    }
}
