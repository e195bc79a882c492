using System.Diagnostics;
using System.Text.Json;

namespace BabyNames.Tests;

/// <summary>The kernels' two paths: AVX-512, and Vector512 as two Vector256 halves (with the scalar
/// transpose) where AVX-512 is missing. The built program is run twice, once with AVX-512 turned
/// off through the runtime's DOTNET_EnableAVX512 switch, and both runs must agree exactly.</summary>
public class FallbackTests
{
    static JsonElement RunApp(bool avx512)
    {
        var start = new ProcessStartInfo
        {
            FileName = Environment.ProcessPath is string p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet",
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "BabyNames.dll"),
                     "--steps", "150", "--samples", "5", "--seed", "3", "--batch-size", "40", "--dim", "24", "--json" })
            start.ArgumentList.Add(a);
        if (!avx512) start.Environment["DOTNET_EnableAVX512"] = "0";
        using var app = Process.Start(start)!;
        var output = app.StandardOutput.ReadToEndAsync();
        var errors = app.StandardError.ReadToEndAsync();
        Assert.True(app.WaitForExit(60_000), "the program did not finish");
        Assert.Equal("", errors.Result);
        Assert.Equal(0, app.ExitCode);
        using var json = JsonDocument.Parse(output.Result);
        return json.RootElement.Clone();
    }

    [Fact]
    public void WithAndWithoutAvx512TheRunIsTheSame()
    {
        var fast = RunApp(avx512: true);
        var fallback = RunApp(avx512: false);
        // on a machine without AVX-512 both runs take the fallback, and this test shows nothing
        Assert.Equal(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated, fast.GetProperty("avx512").GetBoolean());
        Assert.False(fallback.GetProperty("avx512").GetBoolean());
        foreach (var field in new[] { "train_loss", "val_loss" })
            Assert.Equal(fast.GetProperty(field).GetDouble(), fallback.GetProperty(field).GetDouble(), 1e-5);
        Assert.Equal(fast.GetProperty("samples").ToString(), fallback.GetProperty("samples").ToString());
    }
}
