// BabyNames: a character-level language model that invents baby names, in one file.
//
// It reads a list of real names, trains a "bag of embeddings" for about a second with plain SGD,
// then samples new names. Gradients come from reverse-mode automatic differentiation in the style
// of Conal Elliott's "The Simple Essence of Automatic Differentiation": every operation returns its
// value together with a backpropagator, a plain function that takes the gradient of the loss with
// respect to that value and pushes gradient into the operation's inputs. The chain rule is then
// just one function calling the next; there is no tape and no graph object.
//
// The file reads top to bottom: autodiff, primitives, data, model, training, sampling, command line.

using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Text;
using System.Text.Json;

namespace BabyNames;

// ================================================================================================
// Autodiff: a value and its backpropagator
// ================================================================================================

/// <summary>A value paired with its backpropagator. <c>Back(g)</c> takes g = dLoss/dValue and
/// pushes gradient into whatever the value was computed from.</summary>
internal sealed class Node<T>(T value, Action<T> back)
{
    public T Value { get; } = value;
    public Action<T> Back { get; } = back;
}

/// <summary>A trainable (Rows, Cols) table and the gradient of the loss with respect to it. Params
/// are the leaves of every computation: backpropagation ends by adding into <see cref="Grad"/>.</summary>
internal sealed class Param(int rows, int cols)
{
    public int Rows { get; } = rows;
    public int Cols { get; } = cols;
    public float[] Data { get; } = new float[rows * cols];
    public float[] Grad { get; } = new float[rows * cols];

    /// <summary>Plain SGD, and the gradient is zeroed in the same pass, ready for the next step.</summary>
    public void Step(float lr)
    {
        var rate = Vector512.Create(lr);
        for (int i = 0; i < Data.Length; i += Lanes)
        {
            Store(Load(Data, i) - rate * Load(Grad, i), Data, i);
            Store(Vector512<float>.Zero, Grad, i);
        }
    }

    public void ZeroGrad() => Array.Clear(Grad);

    // Every table's width is a whole number of vectors (the model pads it), so no kernel needs a tail.
    internal const int Lanes = 16;

    internal static Vector512<float> Load(float[] a, int i) =>
        Vector512.LoadUnsafe(ref MemoryMarshal.GetArrayDataReference(a), (nuint)i);

    internal static void Store(Vector512<float> v, float[] a, int i) =>
        v.StoreUnsafe(ref MemoryMarshal.GetArrayDataReference(a), (nuint)i);
}

// ================================================================================================
// Primitives: each computes its output and, right beside it, its backpropagator
// ================================================================================================
// Buffers are float[] owned by the model and reused every step; rows are padded to a multiple of
// 16 floats (one Vector512) and the padding stays zero. Vector512 runs as two Vector256 halves on
// machines without AVX-512, so the same code is the fallback.

internal static class Ops
{
    const int Lanes = Param.Lanes;

    /// <summary>out[i] = table[rows[i]] for the first n·K entries of rows: (n,K,D). A row used
    /// twice gets both gradients added.</summary>
    public static Node<float[]> GatherRows(Param table, int[] rows, int count, float[] output)
    {
        int D = table.Cols;
        for (int i = 0; i < count; i++)
            table.Data.AsSpan(rows[i] * D, D).CopyTo(output.AsSpan(i * D, D));
        return new(output, g =>
        {
            for (int i = 0; i < count; i++)
                for (int d = 0, r = rows[i] * D; d < D; d += Lanes)
                    Param.Store(Param.Load(table.Grad, r + d) + Param.Load(g, i * D + d), table.Grad, r + d);
        });
    }

    /// <summary>(n,K,D) → (n,D): the sum over the K context positions. Its gradient flows unchanged
    /// to every position.</summary>
    public static Node<float[]> SumOverK(Node<float[]> x, int n, int K, int D, float[] output, float[] gradX)
    {
        var xs = x.Value;
        for (int b = 0; b < n; b++)
            for (int d = 0; d < D; d += Lanes)
            {
                var sum = Param.Load(xs, b * K * D + d);
                for (int k = 1; k < K; k++) sum += Param.Load(xs, (b * K + k) * D + d);
                Param.Store(sum, output, b * D + d);
            }
        return new(output, g =>
        {
            for (int b = 0; b < n; b++)
                for (int k = 0; k < K; k++)
                    g.AsSpan(b * D, D).CopyTo(gradX.AsSpan((b * K + k) * D, D));
            x.Back(gradX);
        });
    }

    /// <summary>logits = h·Wᵀ + bias: (n,D) × (V,D)ᵀ → (n,Vp), where Vp is V rounded up to whole
    /// vectors and the padding columns are left at zero.</summary>
    public static Node<float[]> MatMul(Node<float[]> h, Param W, Param bias, int n,
        float[] wT, float[] output, float[] gradH)
    {
        var hs = h.Value;
        int V = W.Rows, D = W.Cols, Vp = bias.Cols;
        // Wᵀ (D,Vp) lets one example's logits be built a vector of 16 characters at a time from
        // broadcasts of h, with no horizontal sums.
        for (int v = 0; v < V; v++)
            for (int d = 0; d < D; d++)
                wT[d * Vp + v] = W.Data[v * D + d];
        for (int b = 0; b < n; b++)
            for (int j = 0; j < Vp; j += Lanes)
            {
                // two accumulators halve the chain of dependent multiply-adds
                var even = Param.Load(bias.Data, j);
                var odd = Vector512<float>.Zero;
                for (int d = 0; d < D; d += 2)
                {
                    even = Vector512.FusedMultiplyAdd(Vector512.Create(hs[b * D + d]), Param.Load(wT, d * Vp + j), even);
                    odd = Vector512.FusedMultiplyAdd(Vector512.Create(hs[b * D + d + 1]), Param.Load(wT, (d + 1) * Vp + j), odd);
                }
                Param.Store(even + odd, output, b * Vp + j);
            }
        return new(output, g =>
        {
            // One sweep over the batch gives all three gradients:
            // dh[b] = Σ_v g[b,v]·W[v],  dW[v] += Σ_b g[b,v]·h[b],  dbias += Σ_b g[b].
            for (int b = 0; b < n; b++)
            {
                for (int d = 0; d < D; d += Lanes)
                {
                    var hb = Param.Load(hs, b * D + d);
                    var dh = Vector512<float>.Zero;
                    for (int v = 0; v < V; v++)
                    {
                        var gv = Vector512.Create(g[b * Vp + v]);
                        Param.Store(Vector512.FusedMultiplyAdd(gv, hb, Param.Load(W.Grad, v * D + d)), W.Grad, v * D + d);
                        dh = Vector512.FusedMultiplyAdd(gv, Param.Load(W.Data, v * D + d), dh);
                    }
                    Param.Store(dh, gradH, b * D + d);
                }
                for (int j = 0; j < Vp; j += Lanes)
                    Param.Store(Param.Load(bias.Grad, j) + Param.Load(g, b * Vp + j), bias.Grad, j);
            }
            h.Back(gradH);
        });
    }

    /// <summary>Mean over n examples of −log softmax(logits[b])[targets[b]], over the first V
    /// columns of each (n,Vp) row. Subtracting each row's maximum keeps exp from overflowing.</summary>
    public static Node<float> SoftmaxCrossEntropy(Node<float[]> logits, int[] targets, int n, int V,
        float[] probs, float[] gradLogits)
    {
        var ls = logits.Value;
        int Vp = RoundUp(V);
        double total = 0;
        for (int b = 0; b < n; b++)
        {
            int row = b * Vp;
            var max = Vector512.Create(float.NegativeInfinity);
            for (int j = 0; j < Vp; j += Lanes) max = Vector512.Max(max, RealColumns(Param.Load(ls, row + j), j, V, float.NegativeInfinity));
            float m = HorizontalMax(max);
            var z = Vector512<float>.Zero;
            for (int j = 0; j < Vp; j += Lanes)
            {
                var e = RealColumns(Exp(Param.Load(ls, row + j) - Vector512.Create(m)), j, V, 0f);
                Param.Store(e, probs, row + j);
                z += e;
            }
            float sum = Vector512.Sum(z);
            var inverse = Vector512.Create(1f / sum);
            for (int j = 0; j < Vp; j += Lanes) Param.Store(Param.Load(probs, row + j) * inverse, probs, row + j);
            total += Math.Log(sum) - (ls[row + targets[b]] - m);
        }
        return new((float)(total / n), g =>
        {
            var scale = Vector512.Create(g / n);
            for (int b = 0; b < n; b++)
            {
                for (int j = 0; j < Vp; j += Lanes) Param.Store(Param.Load(probs, b * Vp + j) * scale, gradLogits, b * Vp + j);
                gradLogits[b * Vp + targets[b]] -= g / n;
            }
            logits.Back(gradLogits);
        });
    }

    public static int RoundUp(int size) => (size + Lanes - 1) / Lanes * Lanes;

    // Lanes at or past column V are padding: they read as `fill`.
    static Vector512<float> RealColumns(Vector512<float> v, int j, int V, float fill) =>
        j + Lanes <= V ? v : Vector512.ConditionalSelect(
            Vector512.LessThan(Vector512<int>.Indices + Vector512.Create(j), Vector512.Create(V)).AsSingle(),
            v, Vector512.Create(fill));

    static float HorizontalMax(Vector512<float> v)
    {
        var half = Vector256.Max(v.GetLower(), v.GetUpper());
        var quarter = Vector128.Max(half.GetLower(), half.GetUpper());
        quarter = Vector128.Max(quarter, Vector128.Shuffle(quarter, Vector128.Create(2, 3, 0, 1)));
        quarter = Vector128.Max(quarter, Vector128.Shuffle(quarter, Vector128.Create(1, 0, 3, 2)));
        return quarter.ToScalar();
    }

    /// <summary>e^x for x ≤ 0, to about 1e-7 relative: e^x = 2^n · e^r with n = round(x/ln 2) and
    /// |r| ≤ ln(2)/2, where a degree-6 Taylor polynomial in r is accurate enough for float.</summary>
    internal static Vector512<float> Exp(Vector512<float> x)
    {
        x = Vector512.Max(x, Vector512.Create(-87f)); // keeps 2^n normal; e^-87 is 0 to a softmax
        var n = Vector512.Round(x * Vector512.Create(1.44269504f));
        // ln 2 split in two so that n·ln2 is subtracted without rounding error (Cody and Waite)
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.Create(1f / 720);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 120));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 24));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 6));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.5f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        var twoToN = Vector512.ShiftLeft(Vector512.ConvertToInt32(n) + Vector512.Create(127), 23).AsSingle();
        return p * twoToN;
    }
}

// ================================================================================================
// Data: names, their characters, and (context → next character) examples
// ================================================================================================

/// <summary>A problem with what the user gave us: reported as one line, with this exit code.</summary>
internal sealed class UserError(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

internal static class Limits
{
    public const int MaxNameLength = 50;        // characters; also where sampling stops
    public const int MaxVocabulary = 256;       // distinct characters, the boundary included
    public const int MaxNames = 5_000_000;
    public const long MaxFileBytes = 256L << 20;
    public const long MaxBufferBytes = 1L << 30; // all of the model's tables and step buffers
}

/// <summary>The characters that occur in the names, plus one boundary token (id 0) that stands
/// before a name's first character and after its last.</summary>
internal sealed class Vocabulary
{
    public const int Boundary = 0;
    readonly Rune[] symbols;
    readonly Dictionary<Rune, int> ids;

    public Vocabulary(IEnumerable<string> names)
    {
        var seen = new SortedSet<Rune>();
        foreach (var name in names) foreach (var r in name.EnumerateRunes()) seen.Add(r);
        symbols = [new Rune('.'), .. seen];
        ids = new Dictionary<Rune, int>(symbols.Length);
        for (int i = 1; i < symbols.Length; i++) ids[symbols[i]] = i;
    }

    public int Size => symbols.Length;

    public bool TryEncode(string text, out int[] encoded, out Rune unknown)
    {
        var list = new List<int>(text.Length);
        unknown = default;
        foreach (var r in text.EnumerateRunes())
        {
            if (!ids.TryGetValue(r, out int id)) { unknown = r; encoded = []; return false; }
            list.Add(id);
        }
        encoded = [.. list];
        return true;
    }

    public int[] Encode(string text) =>
        TryEncode(text, out var encoded, out var unknown) ? encoded
            : throw new UserError(1, $"'{unknown}' is not a character of the names");

    public string Decode(IEnumerable<int> encoded)
    {
        var text = new StringBuilder();
        foreach (var id in encoded) text.Append(symbols[id].ToString());
        return text.ToString();
    }
}

internal static class Names
{
    /// <summary>One name a line: trimmed, lower-cased, NFC-normalized; blank lines skipped and
    /// duplicates dropped. Anything that is not a list of names is an error that says where.</summary>
    public static List<string> Parse(ReadOnlySpan<byte> bytes, string source)
    {
        if (bytes.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) bytes = bytes[3..];
        string text;
        try { text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (DecoderFallbackException) { throw new UserError(1, $"{source} is not UTF-8 text; give a text file with one name a line"); }

        var names = new List<string>();
        var seen = new HashSet<string>();
        int lineNumber = 0;
        foreach (var rawLine in text.Split('\n'))
        {
            lineNumber++;
            var name = rawLine.Trim().Normalize(NormalizationForm.FormC).ToLowerInvariant();
            if (name.Length == 0) continue;
            foreach (var c in name)
                if (char.IsControl(c))
                    throw new UserError(1, $"{source}, line {lineNumber}: control character U+{(int)c:X4}; give a text file with one name a line");
            int length = name.EnumerateRunes().Count();
            if (length > Limits.MaxNameLength)
                throw new UserError(1, $"{source}, line {lineNumber}: a name of {length} characters; names may have at most {Limits.MaxNameLength}");
            if (seen.Add(name)) names.Add(name);
            if (names.Count > Limits.MaxNames)
                throw new UserError(1, $"{source} has more than {Limits.MaxNames:N0} names; that is the most BabyNames reads");
        }
        if (names.Count == 0) throw new UserError(1, $"{source} has no names: it is empty or has only blank lines");
        if (names.Count < 2) throw new UserError(1, $"{source} has only one distinct name; give at least 2 (some to train on, some to validate with)");
        return names;
    }

    public static List<string> Read(string? path)
    {
        if (path is null)
        {
            using var embedded = typeof(Names).Assembly.GetManifestResourceStream("names.txt")!;
            var buffer = new MemoryStream();
            embedded.CopyTo(buffer);
            return Parse(buffer.ToArray(), "the bundled names.txt");
        }
        if (Directory.Exists(path)) throw new UserError(1, $"names file '{path}' is a directory; give a text file with one name a line");
        if (!File.Exists(path)) throw new UserError(1, $"names file '{path}' does not exist");
        try
        {
            if (new FileInfo(path).Length > Limits.MaxFileBytes)
                throw new UserError(1, $"names file '{path}' is larger than {Limits.MaxFileBytes >> 20} MB");
            return Parse(File.ReadAllBytes(path), $"names file '{path}'");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserError(1, $"cannot read names file '{path}': {e.Message}");
        }
    }
}

/// <summary>The names split 90/10 into training and validation names, shuffled with the seed.</summary>
internal sealed record Corpus(Vocabulary Vocab, string[] Train, string[] Validation)
{
    public static Corpus Split(List<string> names, Rng rng)
    {
        var vocab = new Vocabulary(names);
        if (vocab.Size > Limits.MaxVocabulary)
            throw new UserError(1, $"the names use {vocab.Size - 1} different characters; at most {Limits.MaxVocabulary - 1} are supported");
        string[] shuffled = [.. names];
        rng.Shuffle(shuffled);
        int validation = Math.Max(1, shuffled.Length / 10);
        return new(vocab, shuffled[validation..], shuffled[..validation]);
    }
}

/// <summary>Every (K previous characters → next character) pair in a list of names. A name of L
/// characters gives L+1 examples: its last one predicts the boundary.</summary>
internal sealed class Examples
{
    public int K { get; }
    public int Count { get; }
    public ushort[] Context { get; } // (Count,K) character ids, oldest first
    public ushort[] Next { get; }    // (Count)

    public Examples(IReadOnlyList<string> names, Vocabulary vocab, int K)
    {
        this.K = K;
        var encoded = names.Select(vocab.Encode).ToArray();
        Count = encoded.Sum(name => name.Length + 1);
        Context = new ushort[(long)Count * K];
        Next = new ushort[Count];
        int i = 0;
        Span<ushort> window = stackalloc ushort[K];
        foreach (var name in encoded)
        {
            window.Fill(Vocabulary.Boundary);
            for (int t = 0; t <= name.Length; i++, t++)
            {
                ushort next = (ushort)(t < name.Length ? name[t] : Vocabulary.Boundary);
                window.CopyTo(Context.AsSpan(i * K, K));
                Next[i] = next;
                window[1..].CopyTo(window);
                window[^1] = next;
            }
        }
    }
}

/// <summary>xorshift64*: small, fast and plenty random for drawing batches and samples.</summary>
internal sealed class Rng
{
    ulong state;

    /// <summary>Different purposes get independent streams from the same seed.</summary>
    public Rng(long seed, int stream = 0)
    {
        ulong z = (ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)stream * 0xD1B54A32D192ED03UL + 0x632BE59BD9B4E019UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        state = (z ^ (z >> 31)) | 1;
    }

    public ulong Next()
    {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return state * 0x2545F4914F6CDD1DUL;
    }

    /// <summary>A whole number in [0, n), by a multiply instead of a division.</summary>
    public int Below(int n) => (int)Math.BigMul(Next(), (ulong)n, out _);

    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

    public void Shuffle<T>(T[] items)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = Below(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}

// ================================================================================================
// Model: a bag of embeddings
// ================================================================================================
// Each of the K previous characters looks up a row of the embedding table; the rows are added up
// and every possible next character is scored against the sum. By default every context position
// has rows of its own (row k·V + c for character c at position k), so "emm" and "mem" differ; the
// order-blind variant shares one row per character across positions, as the original seed did.

internal sealed class Model
{
    public int V { get; }          // vocabulary size, the boundary included
    public int K { get; }          // context length
    public int D { get; }          // embedding width asked for
    public int Width { get; }      // D rounded up to whole vectors; the extra columns stay zero
    public int BatchSize { get; }
    public bool Positional { get; }
    public Param Embedding { get; } // (K·V or V, Width)
    public Param Weight { get; }    // (V, Width)
    public Param Bias { get; }      // (1, Vp)
    public IReadOnlyList<Param> Params => [Embedding, Weight, Bias];

    // step buffers, reused every step
    readonly int[] rows;            // (B,K) embedding rows of the batch's contexts
    readonly int[] targets;         // (B)
    readonly float[] gathered, gradGathered; // (B,K,Width)
    readonly float[] hidden, gradHidden;     // (B,Width)
    readonly float[] weightT;                // (Width,Vp)
    readonly float[] logits, probs, gradLogits; // (B,Vp)

    public Model(int vocabularySize, int context, int dim, int batchSize, bool positional, Rng rng)
    {
        (V, K, D, BatchSize, Positional) = (vocabularySize, context, dim, batchSize, positional);
        Width = Ops.RoundUp(dim);
        int Vp = Ops.RoundUp(V), tableRows = positional ? K * V : V;
        long floats = 2L * (tableRows + V + 1) * Width + 2L * batchSize * K * Width
            + 2L * batchSize * Width + (long)Width * Vp + 3L * batchSize * Vp;
        if (floats * sizeof(float) > Limits.MaxBufferBytes)
            throw new UserError(2, $"these sizes need {floats * sizeof(float) >> 20} MB of buffers, more than the {Limits.MaxBufferBytes >> 20} MB limit; use a smaller --batch-size, --context or --dim");
        Embedding = new Param(tableRows, Width);
        Weight = new Param(V, Width);
        Bias = new Param(1, Vp);
        foreach (var table in (Param[])[Embedding, Weight])
            for (int r = 0; r < table.Rows; r++)
                for (int d = 0; d < D; d++)
                    table.Data[r * Width + d] = (float)(rng.NextDouble() - 0.5);
        rows = new int[batchSize * K];
        targets = new int[batchSize];
        gathered = new float[batchSize * K * Width];
        gradGathered = new float[gathered.Length];
        hidden = new float[batchSize * Width];
        gradHidden = new float[hidden.Length];
        weightT = new float[Width * Vp];
        logits = new float[batchSize * Vp];
        probs = new float[logits.Length];
        gradLogits = new float[logits.Length];
    }

    /// <summary>Puts example i of a set into batch slot `slot`.</summary>
    public void SetExample(int slot, Examples set, int i)
    {
        for (int k = 0; k < K; k++) rows[slot * K + k] = Row(k, set.Context[i * K + k]);
        targets[slot] = set.Next[i];
    }

    /// <summary>Puts a context (K character ids, oldest first) into batch slot `slot`.</summary>
    public void SetContext(int slot, ReadOnlySpan<int> context)
    {
        for (int k = 0; k < K; k++) rows[slot * K + k] = Row(k, context[k]);
    }

    int Row(int k, int c) => Positional ? k * V + c : c;

    /// <summary>Scores for the next character of the first n slots: (n,Vp), the first V real.</summary>
    public Node<float[]> Logits(int n) =>
        Ops.MatMul(
            Ops.SumOverK(Ops.GatherRows(Embedding, rows, n * K, gathered), n, K, Width, hidden, gradGathered),
            Weight, Bias, n, weightT, logits, gradHidden);

    public Node<float> Loss(int n) => Ops.SoftmaxCrossEntropy(Logits(n), targets, n, V, probs, gradLogits);

    public void Step(float lr)
    {
        foreach (var p in Params) p.Step(lr);
    }
}

// ================================================================================================
// Training
// ================================================================================================

internal sealed record TrainResult(long Steps, double Seconds, float TrainLoss, long AllocatedBytesPerStep);

internal static class Trainer
{
    /// <summary>SGD on random minibatches, for `seconds` of wall time or exactly `steps` steps.</summary>
    public static TrainResult Train(Model model, Examples train, float lr, double seconds, long? steps, Rng rng)
    {
        int B = model.BatchSize;
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        float loss = float.NaN;
        long step = 0;
        // reading the clock every 16 steps keeps it out of the profile, even at tiny batches
        for (; steps is long n ? step < n : step % 16 != 0 || clock.Elapsed.TotalSeconds < seconds; step++)
        {
            for (int b = 0; b < B; b++) model.SetExample(b, train, rng.Below(train.Count));
            var node = model.Loss(B);
            loss = node.Value;
            if (!float.IsFinite(loss))
                throw new UserError(1, $"training diverged at step {step + 1} (loss = {(float.IsNaN(loss) ? "NaN" : "Infinity")}); try a smaller --lr");
            node.Back(1f);
            model.Step(lr);
        }
        double elapsed = clock.Elapsed.TotalSeconds;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        return new(step, elapsed, loss, step == 0 ? 0 : allocated / step);
    }

    /// <summary>Mean loss over every example of a set, in batches, without training.</summary>
    public static double Evaluate(Model model, Examples set)
    {
        double total = 0;
        for (int start = 0; start < set.Count; start += model.BatchSize)
        {
            int n = Math.Min(model.BatchSize, set.Count - start);
            for (int b = 0; b < n; b++) model.SetExample(b, set, start + b);
            total += (double)model.Loss(n).Value * n;
        }
        return total / set.Count;
    }
}

// ================================================================================================
// Sampling
// ================================================================================================

internal static class Sampling
{
    /// <summary>One name, a character at a time, each drawn from softmax(logits / temperature)
    /// restricted to the topK most likely characters, until the boundary comes up.</summary>
    public static string Sample(Model model, Vocabulary vocab, Rng rng, float temperature, int? topK)
    {
        Span<int> context = stackalloc int[model.K];
        context.Fill(Vocabulary.Boundary);
        var name = new List<int>();
        var weights = new double[model.V];
        while (name.Count < Limits.MaxNameLength)
        {
            model.SetContext(0, context);
            var logits = model.Logits(1).Value;
            float cutoff = float.NegativeInfinity;
            if (topK is int k && k < model.V)
            {
                var sorted = logits[..model.V];
                Array.Sort(sorted);
                cutoff = sorted[model.V - k];
            }
            float max = logits.AsSpan(0, model.V).ToArray().Max();
            double total = 0;
            for (int c = 0; c < model.V; c++)
                total += weights[c] = logits[c] >= cutoff ? Math.Exp((logits[c] - max) / temperature) : 0;
            double u = rng.NextDouble() * total;
            int next = 0;
            while (next < model.V - 1 && (u -= weights[next]) >= 0) next++;
            if (next == Vocabulary.Boundary) break;
            name.Add(next);
            context[1..].CopyTo(context);
            context[^1] = next;
        }
        return vocab.Decode(name);
    }
}

// ================================================================================================
// Command line
// ================================================================================================

internal sealed record Settings(
    double Seconds, long? Steps, int Samples, long Seed, string? NamesPath, int BatchSize, int Context,
    int Dim, float LearningRate, float Temperature, int? TopK, bool OrderBlind, bool Json);

internal static class Program
{
    static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>The whole program: 0 on success, 1 for bad data or a failed run, 2 for a bad
    /// command line. Every failure is one line on stderr and nothing on stdout.</summary>
    internal static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var seconds = Number("--seconds", "Seconds of training (wall time)", 1.0, 1e-3, 3600, "a number of seconds from 0.001 to 3600");
        var steps = Optional("--steps", "Train exactly this many steps instead of for --seconds (reproducible)", 1L, 1_000_000_000L, "a whole number from 1 to 1,000,000,000");
        var samples = Number("--samples", "How many names to print", 20, 0, 100_000, "a whole number from 0 to 100,000");
        var seed = Number("--seed", "Seed for the split, the initial weights, the batches and the samples", 42L, long.MinValue, long.MaxValue, "a whole number");
        var names = new Option<string?>("--names") { Description = "Names file, one name a line (UTF-8) [default: the bundled names.txt]" };
        var batchSize = Number("--batch-size", "Examples per SGD step", 32, 1, 65_536, "a whole number from 1 to 65,536");
        var context = Number("--context", "Characters of context the model sees", 4, 1, 16, "a whole number from 1 to 16");
        var dim = Number("--dim", "Embedding width", 16, 1, 1024, "a whole number from 1 to 1024");
        var lr = Number("--lr", "SGD learning rate", 0.5f, float.Epsilon, 1e6f, "a positive number");
        var temperature = Number("--temperature", "Sampling temperature: lower is safer, higher is wilder", 1f, 1e-3f, 100f, "a number from 0.001 to 100");
        var topK = Optional("--top-k", "Sample only from the K most likely next characters [default: all]", 1, 100_000, "a whole number from 1 up");
        var orderBlind = new Option<bool>("--order-blind") { Description = "Share one embedding per character across positions (the seed's model)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of text" };

        var root = new RootCommand("BabyNames: trains a tiny character-level language model for about a second, then invents names.")
        {
            seconds, steps, samples, seed, names, batchSize, context, dim, lr, temperature, topK, orderBlind, json,
        };
        root.SetAction(parsed => Execute(new Settings(
            parsed.GetValue(seconds), parsed.GetValue(steps), parsed.GetValue(samples), parsed.GetValue(seed),
            parsed.GetValue(names), parsed.GetValue(batchSize), parsed.GetValue(context), parsed.GetValue(dim),
            parsed.GetValue(lr), parsed.GetValue(temperature), parsed.GetValue(topK), parsed.GetValue(orderBlind),
            parsed.GetValue(json)), stdout, stderr));

        var result = root.Parse(args);
        if (result.Errors.Count > 0)
        {
            stderr.WriteLine($"error: {result.Errors[0].Message} (see --help)");
            return 2;
        }
        return result.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
    }

    /// <summary>A numeric option whose parser also checks the range, so that every bad value gets
    /// the same kind of message: "--lr must be a positive number, got -1".</summary>
    static Option<T> Number<T>(string name, string description, T defaultValue, T min, T max, string requirement)
        where T : struct, INumber<T>
    {
        return new Option<T>(name)
        {
            Description = description,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = result => ParseInRange(result, name, min, max, requirement) ?? defaultValue,
        };
    }

    static Option<T?> Optional<T>(string name, string description, T min, T max, string requirement)
        where T : struct, INumber<T> =>
        new(name) { Description = description, CustomParser = result => ParseInRange(result, name, min, max, requirement) };

    static T? ParseInRange<T>(System.CommandLine.Parsing.ArgumentResult result, string name, T min, T max, string requirement)
        where T : struct, INumber<T>
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (T.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
            return value;
        result.AddError($"{name} must be {requirement}, got '{text}'");
        return null;
    }

    static int Execute(Settings settings, TextWriter stdout, TextWriter stderr)
    {
        try
        {
            var report = Report.Build(settings);
            stdout.Write(settings.Json ? report.ToJson() : report.ToText());
            return 0;
        }
        catch (UserError e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return e.ExitCode;
        }
        catch (OutOfMemoryException)
        {
            stderr.WriteLine("error: out of memory; use smaller sizes or a shorter names file");
            return 1;
        }
    }
}

/// <summary>Everything a run produced, printed as text or as JSON.</summary>
internal sealed record Report(
    Settings Settings, int VocabularySize, int NameCount, TrainResult Training, double StartupSeconds,
    double ValidationLoss, IReadOnlyList<(string Name, bool InTraining)> Samples)
{
    // independent random streams drawn from the one --seed
    const int SplitStream = 1, InitStream = 2, BatchStream = 3, SampleStream = 4;

    public static Report Build(Settings s)
    {
        var corpus = Corpus.Split(Names.Read(s.NamesPath), new Rng(s.Seed, SplitStream));
        var train = new Examples(corpus.Train, corpus.Vocab, s.Context);
        var validation = new Examples(corpus.Validation, corpus.Vocab, s.Context);
        var model = new Model(corpus.Vocab.Size, s.Context, s.Dim, s.BatchSize, !s.OrderBlind, new Rng(s.Seed, InitStream));
        double startup = (DateTime.Now - Process.GetCurrentProcess().StartTime).TotalSeconds;
        var result = Trainer.Train(model, train, s.LearningRate, s.Seconds, s.Steps, new Rng(s.Seed, BatchStream));
        double validationLoss = Trainer.Evaluate(model, validation);
        var known = corpus.Train.ToHashSet();
        var rng = new Rng(s.Seed, SampleStream);
        var samples = Enumerable.Range(0, s.Samples)
            .Select(_ => Sampling.Sample(model, corpus.Vocab, rng, s.Temperature, s.TopK))
            .Select(name => (name, known.Contains(name))).ToList();
        return new(s, corpus.Vocab.Size, corpus.Train.Length + corpus.Validation.Length, result, startup, validationLoss, samples);
    }

    public string ToText()
    {
        var inv = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.AppendLine(inv, $"Elapsed: {Training.Seconds:F3} seconds");
        text.AppendLine(inv, $"Steps: {Training.Steps:N0} ({ExamplesPerSecond / 1e6:F2} M examples/s)");
        text.AppendLine(inv, $"Final loss: {Training.TrainLoss:F3} (train) {ValidationLoss:F3} (validation)");
        text.AppendLine("Samples:");
        int width = Samples.Count.ToString(inv).Length;
        for (int i = 0; i < Samples.Count; i++)
            text.AppendLine(inv, $"{(i + 1).ToString(inv).PadLeft(width + 1)} : {Samples[i].Name}{(Samples[i].InTraining ? " (in training data)" : "")}");
        return text.ToString();
    }

    double ExamplesPerSecond => Training.Seconds > 0 ? Training.Steps * (double)Settings.BatchSize / Training.Seconds : 0;

    public string ToJson()
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteNumber("seconds", Training.Seconds);
            w.WriteNumber("steps", Training.Steps);
            w.WriteNumber("examples", Training.Steps * Settings.BatchSize);
            w.WriteNumber("examples_per_second", Math.Round(ExamplesPerSecond));
            w.WriteNumber("train_loss", Training.TrainLoss);
            w.WriteNumber("val_loss", ValidationLoss);
            w.WriteNumber("alloc_bytes_per_step", Training.AllocatedBytesPerStep);
            w.WriteNumber("startup_seconds", StartupSeconds);
            w.WriteNumber("vocab_size", VocabularySize);
            w.WriteNumber("names", NameCount);
            w.WriteStartArray("samples");
            foreach (var (name, inTraining) in Samples)
            {
                w.WriteStartObject();
                w.WriteString("name", name);
                w.WriteBoolean("in_training", inTraining);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartObject("options");
            var s = Settings;
            w.WriteString("names_file", s.NamesPath ?? "(bundled)");
            w.WriteNumber("seconds", s.Seconds);
            if (s.Steps is long steps) w.WriteNumber("steps", steps); else w.WriteNull("steps");
            w.WriteNumber("samples", s.Samples);
            w.WriteNumber("seed", s.Seed);
            w.WriteNumber("batch_size", s.BatchSize);
            w.WriteNumber("context", s.Context);
            w.WriteNumber("dim", s.Dim);
            w.WriteNumber("lr", s.LearningRate);
            w.WriteNumber("temperature", s.Temperature);
            if (s.TopK is int k) w.WriteNumber("top_k", k); else w.WriteNull("top_k");
            w.WriteBoolean("order_blind", s.OrderBlind);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + Environment.NewLine;
    }
}
