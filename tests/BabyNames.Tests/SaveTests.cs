using System.Diagnostics;
using System.Text.Json;

namespace BabyNames.Tests;

/// <summary>--save: a regular file only, checked before training, written whole or not at all.</summary>
public class SaveTests
{
    /// <summary>A short run on the syllable names that saves to `path`.</summary>
    static string[] TrainAndSave(string path, params string[] more) =>
        ["--names", SyllableFile.Value, "--steps", "20", "--context", "3", "--dim", "8", "--hidden", "8", "--samples", "3", "--save", path, .. more];

    static readonly Lazy<string> SyllableFile = new(() =>
    {
        var path = Path.Combine(Path.GetTempPath(), $"babynames-test-syllables-{Environment.ProcessId}.txt");
        File.WriteAllText(path, TestData.SyllableNamesFile);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => File.Delete(path);
        return path;
    });

    static string[] Entries(string folder) => [.. Directory.GetFileSystemEntries(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal)!];

    static void AssertIsAModel(string path)
    {
        var t = ModelFile.Load(path);
        Assert.Equal(20, t.Steps);
    }

    static void MakeFifo(string path)
    {
        using var mkfifo = Process.Start("mkfifo", [path]);
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
    }

    [Fact]
    public void SaveReplacesAnOldModelAndLeavesNoTemporaryFile()
    {
        using var dir = new TempDir();
        var model = dir.File("model.bin");
        File.WriteAllText(model, "not a model yet");

        var first = Cli.Run(TrainAndSave(model, "--seed", "1"));
        first.AssertSuccess();
        Assert.Equal(["model.bin"], Entries(dir.Path));
        var firstBytes = File.ReadAllBytes(model);
        Assert.Equal("BABYNAME"u8.ToArray(), firstBytes[..8]);

        var second = Cli.Run(TrainAndSave(model, "--seed", "2", "--json"));
        Assert.Equal(0, second.Code);
        Assert.Equal(["model.bin"], Entries(dir.Path));
        Assert.NotEqual(firstBytes, File.ReadAllBytes(model));
        // the file now holds the second model: loading it with the second seed gives its samples
        var loaded = Cli.Run("--load", model, "--seed", "2", "--samples", "3", "--json").Json();
        Assert.Equal(Output.JsonSamples(second.Json()), Output.JsonSamples(loaded));
        Assert.Equal(second.Json().GetProperty("val_loss").GetDouble(), loaded.GetProperty("val_loss").GetDouble());
    }

    [Fact]
    public void SaveSaysWhereItSaved()
    {
        using var dir = new TempDir();
        var model = dir.File("model.bin");
        var text = Cli.Run(TrainAndSave(model));
        text.AssertSuccess();
        Assert.Equal($"Saved model to {model}", text.OutLines[^1]);

        // with --json, stdout is the JSON object alone and the line goes to stderr
        var json = Cli.Run(TrainAndSave(model, "--json"));
        Assert.Equal(0, json.Code);
        Assert.Equal($"Saved model to {model}\n", json.Err.Replace("\r\n", "\n"));
        Assert.Equal(model, json.Json().GetProperty("saved").GetString());
        Assert.Equal(model, json.Json().GetProperty("options").GetProperty("save").GetString());
    }

    // ---------------------------------------------------------------------------------------------
    // Problems found before training

    [Theory]
    [InlineData("missing folder")]
    [InlineData("folder")]
    [InlineData("device")]
    [InlineData("fifo")]
    [InlineData("link to a device")]
    [InlineData("link to a folder")]
    public void APathThatCannotTakeAModelIsRefusedBeforeTraining(string kind)
    {
        using var dir = new TempDir();
        var path = dir.File("model.bin");
        switch (kind)
        {
            case "missing folder": path = dir.File(Path.Combine("no-such-folder", "model.bin")); break;
            case "folder": Directory.CreateDirectory(path); break;
            case "device": path = "/dev/null"; break;
            case "fifo": MakeFifo(path); break;
            case "link to a device": File.CreateSymbolicLink(path, "/dev/null"); break;
            case "link to a folder": Directory.CreateDirectory(dir.File("sub")); File.CreateSymbolicLink(path, dir.File("sub")); break;
        }
        var before = Entries(dir.Path);

        var line = InProcess.FailsBeforeTraining(1, "--names", SyllableFile.Value, "--seconds", "3600", "--samples", "3", "--save", path);
        Assert.StartsWith($"error: cannot save the model to '{path}': ", line);
        Assert.DoesNotContain(".babynames-", line); // the user's path, not a temporary file's
        Assert.DoesNotContain("internal error", line);
        Assert.Equal(before, Entries(dir.Path));
        if (kind == "missing folder") Assert.Contains("create it", line);
        if (kind == "folder") Assert.True(Directory.Exists(path));
        if (kind == "fifo")
        {
            using var test = Process.Start("test", ["-p", path]); // still a pipe
            test.WaitForExit();
            Assert.Equal(0, test.ExitCode);
        }
    }

    [Fact]
    public void AMissingFolderAtTheRootIsRefusedAtOnceNamingThePath()
    {
        var path = $"/nonexistent-{Guid.NewGuid():N}/m.bin";
        var line = InProcess.FailsBeforeTraining(1, "--seconds", "3600", "--save", path);
        Assert.Contains($"'{path}'", line);
        Assert.Contains("no folder", line);
        Assert.Contains("create it", line);
        Assert.DoesNotContain(".tmp", line);
    }

    [Fact]
    public void AFolderThatCannotBeWrittenToIsRefusedBeforeTrainingNamingThePathNotATemporaryFile()
    {
        // sysfs takes no new files, even from root
        Assert.True(Directory.Exists("/sys"), "this test needs Linux's /sys");
        var line = InProcess.FailsBeforeTraining(1, "--seconds", "3600", "--save", "/sys/model.bin");
        Assert.StartsWith("error: cannot save the model to '/sys/model.bin': ", line);
        Assert.DoesNotContain(".babynames-", line);
        Assert.DoesNotContain(".tmp", line);
    }

    [Fact]
    public void ASaveThatFailsAfterTrainingStillPrintsTheSamples()
    {
        using var dir = new TempDir();
        var folder = dir.File("models");
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, "model.bin");
        // the folder is there when the run checks, and gone once training has started
        void RemoveFolder(bool started)
        {
            if (started) Directory.Delete(folder, recursive: true);
        }

        var text = InProcess.Run(TrainAndSave(path), training: RemoveFolder);
        Assert.Equal(1, text.Code);
        Assert.Equal(3, Output.TextSamples(text.Out).Count);
        Assert.DoesNotContain(text.OutLines, l => l.StartsWith("Saved model"));
        var line = text.AssertErrorLine();
        Assert.StartsWith($"error: cannot save the model to '{path}'", line);
        Assert.EndsWith("the model was not saved", line);
        Assert.False(Directory.Exists(folder));

        Directory.CreateDirectory(folder);
        var json = InProcess.Run(TrainAndSave(path, "--json"), training: RemoveFolder);
        Assert.Equal(1, json.Code);
        Assert.StartsWith($"error: cannot save the model to '{path}'", json.AssertErrorLine()); // and no "Saved model to" line
        Assert.EndsWith("the model was not saved", json.AssertErrorLine());
        using var doc = JsonDocument.Parse(json.Out);
        Assert.Equal(3, Output.JsonSamples(doc.RootElement).Count);
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("saved").ValueKind);
        Assert.EndsWith("the model was not saved", doc.RootElement.GetProperty("error").GetString());
    }

    // ---------------------------------------------------------------------------------------------
    // What a save replaces

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ASymbolicLinkIsFollowedTheTargetReplacedAndTheLinkKept(bool relative)
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("real"));
        var target = dir.File(Path.Combine("real", "target.bin"));
        File.WriteAllText(target, "old");
        var link = dir.File("link.bin");
        string linkText = relative ? Path.Combine("real", "target.bin") : target;
        File.CreateSymbolicLink(link, linkText);

        Cli.Run(TrainAndSave(link)).AssertSuccess();

        Assert.Equal(linkText, new FileInfo(link).LinkTarget); // still the same link
        Assert.Null(new FileInfo(target).LinkTarget);            // the target a file
        AssertIsAModel(target);
        AssertIsAModel(link);
        Assert.Equal(["link.bin", "real"], Entries(dir.Path));
        Assert.Equal(["target.bin"], Entries(dir.File("real")));
        Assert.Equal(target, ModelFile.Target(link));
    }

    [Fact]
    public void ALinkToAFileThatIsNotThereYetMakesIt()
    {
        using var dir = new TempDir();
        var target = dir.File("target.bin");
        var link = dir.File("link.bin");
        File.CreateSymbolicLink(link, target);
        Cli.Run(TrainAndSave(link)).AssertSuccess();
        Assert.Equal(target, new FileInfo(link).LinkTarget);
        AssertIsAModel(target);
    }

    [Theory]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite)]                                                  // 600
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead)]                         // 640
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead)] // 644
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void AnExistingFilesModeIsKept(UnixFileMode mode)
    {
        using var dir = new TempDir();
        var path = dir.File("model.bin");
        File.WriteAllText(path, "old");
        File.SetUnixFileMode(path, mode);
        Cli.Run(TrainAndSave(path)).AssertSuccess();
        Assert.Equal(mode, File.GetUnixFileMode(path));
        AssertIsAModel(path);
    }

    [Theory]
    [InlineData(248)]
    [InlineData(255)] // the longest name a Linux folder holds
    public void ALongFileNameCanBeSaved(int length)
    {
        using var dir = new TempDir();
        var path = dir.File(new string('m', length - 4) + ".bin");
        Assert.Equal(length, Path.GetFileName(path).Length);
        Cli.Run(TrainAndSave(path)).AssertSuccess();
        AssertIsAModel(path);
        Assert.Equal([Path.GetFileName(path)], Entries(dir.Path));
    }

    [Fact]
    public void TargetIsTheFullPathOfAPlainFile()
    {
        using var dir = new TempDir();
        var path = dir.File("new.bin");
        Assert.Equal(path, ModelFile.Target(path));
        Assert.Empty(Entries(dir.Path)); // the check leaves nothing behind
    }
}
