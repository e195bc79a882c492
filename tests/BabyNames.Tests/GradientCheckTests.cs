namespace BabyNames.Tests;

public class GradientCheckTests
{
    const double Tolerance = 1e-3, Floor = 1e-2;
    const float ModelEps = 0.2f;

    static void CheckAll(string what, float[] x, float[] analytic, Func<double> loss, float eps, bool extrapolate = false)
    {
        double worst = 0;
        string worstAt = "";
        for (int i = 0; i < x.Length; i++)
        {
            double Central(float e)
            {
                float original = x[i];
                float plus = original + e, minus = original - e;
                x[i] = plus;
                double lossPlus = loss();
                x[i] = minus;
                double lossMinus = loss();
                x[i] = original;
                return (lossPlus - lossMinus) / ((double)plus - minus);
            }
            double numeric = extrapolate ? (4 * Central(eps / 2) - Central(eps)) / 3 : Central(eps);
            double error = Math.Abs(analytic[i] - numeric) / Math.Max(Math.Max(Math.Abs(analytic[i]), Math.Abs(numeric)), Floor);
            if (error > worst) { worst = error; worstAt = $"{what}[{i}]: analytic {analytic[i]:R}, numeric {numeric:R}"; }
        }
        Assert.True(worst < Tolerance, $"relative error {worst:E2} at {worstAt}");
    }

    [Theory]
    [InlineData(140, 37, 0.2f)] // table
    [InlineData(30, 37, 0.2f)]  // per example
    [InlineData(140, 37, 0.05f)] // table
    [InlineData(30, 37, 0.05f)]  // per example
    [InlineData(30, 37, 0.02f)]  // per example
    public void MlpGradient(int batch, int V, float eps)
    {
        var names = Enumerable.Range(0, 60).Select(i => new string(Enumerable.Range(0, 3 + i % 5).Select(j => (char)('a' + (i * 7 + j * 3) % (V - 1))).ToArray())).ToList();
        var vocab = new Vocabulary(names);
        Assert.Equal(V, vocab.Size);
        var ex = new Examples(names, vocab, 3);
        var model = new Model(ModelKind.Mlp, V, 3, 16, 48, true, batch, new Rng(3, 2));
        var picks = Enumerable.Range(0, batch).Select(i => (i * 13) % ex.Count).ToArray();
        var rng = new Random(1);
        for (int i = 0; i < model.V * model.Hp; i++) if (i % model.Hp < 48) model.Output.Data[i] = (float)(rng.NextDouble() - 0.5);
        double Loss()
        {
            model.MakeTable();
            double total = 0;
            foreach (var s in model.Shards) { s.Load(ex, picks.AsSpan(s.Offset, s.Count)); model.Loss(s, s.Count); for (int b = 0; b < s.Count; b++) total -= Math.Log(s.Probs[b * model.Vp + s.Targets[b]]) / batch; }
            return total;
        }
        foreach (var p in model.Params) p.ZeroGrad();
        var table = model.MakeTable();
        foreach (var s in model.Shards) { s.Load(ex, picks.AsSpan(s.Offset, s.Count)); model.Loss(s, s.Count).Back((float)s.Count / batch); }
        model.Collect(0, 1);
        if (table != null) model.BackTable(table);
        var analytic = model.Params.Select(p => (float[])p.Grad.Clone()).ToArray();
        for (int i = 0; i < model.Params.Count; i++)
            CheckAll($"param{i}", model.Params[i].Data, analytic[i], Loss, eps, extrapolate: true);
    }
}
