using System.Text;

namespace BabyNames.Tests;

/// <summary>Reading names, the vocabulary, the (context → next) examples and the split.</summary>
public class DataTests
{
    static List<string> Parse(string text) => Names.Parse(TestData.Utf8(text), "test.txt");

    static UserError ParseFails(byte[] bytes)
    {
        var e = Assert.Throws<UserError>(() => Names.Parse(bytes, "test.txt"));
        Assert.Equal(1, e.ExitCode);
        Assert.Contains("test.txt", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    // ---------------------------------------------------------------------------------------------
    // Parsing

    [Fact]
    public void ParseHandlesCrlfBomCaseDuplicatesAndBlankLines()
    {
        var bytes = new byte[] { 0xEF, 0xBB, 0xBF }
            .Concat(TestData.Utf8("Anna\r\n\r\nBOB\r\n  anna  \r\nÉlodie\r\nJean-Luc\r\nO'Brien\r\n\t\r\n   \r\nbob\r\nANNA"))
            .ToArray();

        var names = Names.Parse(bytes, "test.txt");

        Assert.Equal(["anna", "bob", "élodie", "jean-luc", "o'brien"], names);
    }

    [Fact]
    public void ParseKeepsAccentsHyphensApostrophesAndInnerSpaces()
    {
        var names = Parse("Zoë\nÖZLEM\nhans-peter\nd'arcy\nMary Ann\nAnaïs\nŁUKASZ\nΣοφία\n");
        Assert.Equal(["zoë", "özlem", "hans-peter", "d'arcy", "mary ann", "anaïs", "łukasz", "σοφία"], names);
    }

    [Fact]
    public void ParseWithoutTrailingNewlineKeepsTheLastName()
    {
        Assert.Equal(["ann", "bo"], Parse("ann\nbo"));
    }

    [Fact]
    public void ParseTreatsLoneCarriageReturnAsAControlCharacterNotALineBreak()
    {
        // Old Mac line ends: the whole file is one line with CRs inside; that is reported, not
        // silently taken as one long name.
        var e = ParseFails(TestData.Utf8("ann\rbob\rcid\r"));
        Assert.Contains("U+000D", e.Message);
    }

    [Fact]
    public void ParseNormalizesToNfcSoBothSpellingsOfANameAreOne()
    {
        // "anaïs" with U+00EF, and with i + U+0308 COMBINING DIAERESIS
        var names = Parse("ana\u00EFs\nana\u0069\u0308s\nbob\n");
        Assert.Equal(["ana\u00EFs", "bob"], names);
    }

    [Fact]
    public void TestsRunWithTheAppsGlobalizationMode()
    {
        // NFC normalization needs ICU, so neither the app nor the tests may use invariant mode;
        // if this fails, the two have drifted apart.
        Assert.False(AppContext.TryGetSwitch("System.Globalization.Invariant", out bool invariant) && invariant);
        var csproj = File.ReadAllText(Path.Combine(TestData.AppFolder, "BabyNames.csproj"));
        Assert.DoesNotContain("<InvariantGlobalization>true</InvariantGlobalization>", csproj);
    }

    [Fact]
    public void ParseFailsOnEmptyInput() =>
        Assert.Contains("no names", ParseFails([]).Message);

    [Fact]
    public void ParseFailsOnABomAlone() =>
        Assert.Contains("no names", ParseFails([0xEF, 0xBB, 0xBF]).Message);

    [Fact]
    public void ParseFailsOnOnlyBlankLines() =>
        Assert.Contains("no names", ParseFails(TestData.Utf8("\n\r\n   \n\t\n\n")).Message);

    [Theory]
    [InlineData("anna\n")]
    [InlineData("anna\nANNA\n  Anna \n")]
    public void ParseFailsOnOneDistinctName(string text) =>
        Assert.Contains("one distinct name", ParseFails(TestData.Utf8(text)).Message);

    [Fact]
    public void ParseFailsOnNulBytesAndSaysWhere()
    {
        var e = ParseFails(TestData.Utf8("anna\nb\0b\ncarl\n"));
        Assert.Contains("line 2", e.Message);
        Assert.Contains("U+0000", e.Message);
    }

    [Fact]
    public void ParseFailsOnUtf16() // a common way to get "not UTF-8"
    {
        var e = ParseFails(Encoding.Unicode.GetPreamble().Concat(Encoding.Unicode.GetBytes("anna\nbob\n")).ToArray());
        Assert.Contains("UTF-8", e.Message);
    }

    [Theory]
    [InlineData(new byte[] { (byte)'a', (byte)'n', 0xFF, (byte)'\n', (byte)'b', (byte)'o' })]     // never valid
    [InlineData(new byte[] { (byte)'a', 0xC3, (byte)'\n', (byte)'b', (byte)'o' })]                // truncated sequence
    [InlineData(new byte[] { (byte)'a', 0xC0, 0xAF, (byte)'\n', (byte)'b', (byte)'o' })]           // overlong encoding
    [InlineData(new byte[] { (byte)'a', 0xED, 0xA0, 0x80, (byte)'\n', (byte)'b', (byte)'o' })]     // encoded surrogate
    public void ParseFailsOnInvalidUtf8(byte[] bytes) =>
        Assert.Contains("UTF-8", ParseFails(bytes).Message);

    [Fact]
    public void ParseAcceptsNamesOfExactlyFiftyCharacters()
    {
        string fifty = new('a', 50), accented = string.Concat(Enumerable.Repeat("é", 50)), emoji = string.Concat(Enumerable.Repeat("😀", 50));
        var names = Parse($"{fifty}\n{accented}\n{emoji}\n");
        Assert.Equal([fifty, accented, emoji], names); // characters, not bytes or UTF-16 units
    }

    [Fact]
    public void ParseFailsOnANameOfFiftyOneCharacters()
    {
        var e = ParseFails(TestData.Utf8($"ann\nbob\n{new string('x', 51)}\ncid\n"));
        Assert.Contains("line 3", e.Message);
        Assert.Contains("51", e.Message);
    }

    [Fact]
    public void FiftyCharactersAfterTrimmingIsFine()
    {
        var names = Parse($"   {new string('a', 50)}   \nbob\n");
        Assert.Equal(50, names[0].Length);
    }

    // ---------------------------------------------------------------------------------------------
    // Files

    [Fact]
    public void ReadMissingFileFails()
    {
        var path = Path.Combine(Path.GetTempPath(), $"babynames-missing-{Guid.NewGuid():N}.txt");
        var e = Assert.Throws<UserError>(() => Names.Read(path));
        Assert.Equal(1, e.ExitCode);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void ReadDirectoryFails()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<UserError>(() => Names.Read(dir.Path));
        Assert.Equal(1, e.ExitCode);
        Assert.Contains("directory", e.Message);
    }

    [Fact]
    public void ReadFileWithCrlfAndBom()
    {
        using var file = new TempFile(new byte[] { 0xEF, 0xBB, 0xBF }.Concat(TestData.Utf8("Ann\r\nBo\r\n")).ToArray());
        Assert.Equal(["ann", "bo"], Names.Read(file.Path));
    }

    [Fact]
    public void ReadWithoutPathGivesTheBundledNames()
    {
        // independently: the distinct non-blank lines of names.txt, trimmed and lower-cased
        var lines = File.ReadAllLines(Path.Combine(TestData.AppFolder, "names.txt"))
            .Select(l => l.Trim().ToLowerInvariant()).Where(l => l.Length > 0).Distinct().ToList();
        var names = Names.Read(null);
        Assert.Equal(lines, names);
        Assert.True(names.Count > 1000);
    }

    // ---------------------------------------------------------------------------------------------
    // Vocabulary

    [Fact]
    public void VocabularyHasEachCharacterOncePlusTheBoundary()
    {
        var vocab = new Vocabulary(["bob", "anna", "ñoño"]);
        Assert.Equal(6, vocab.Size); // boundary, a, b, n, o, ñ
        Assert.Equal(0, Vocabulary.Boundary);
        var ids = "abnoñ".Select(c => vocab.Encode(c.ToString())).Select(e => Assert.Single(e)).ToList();
        Assert.Equal(5, ids.Distinct().Count());
        Assert.All(ids, id => Assert.InRange(id, 1, vocab.Size - 1)); // 0 is the boundary's alone
    }

    [Theory]
    [InlineData("anna")]
    [InlineData("ñoño")]
    [InlineData("")]
    public void EncodeDecodeRoundTrips(string text)
    {
        var vocab = new Vocabulary(["bob", "anna", "ñoño"]);
        var encoded = vocab.Encode(text);
        Assert.Equal(text.Length, encoded.Length);
        Assert.Equal(text, vocab.Decode(encoded));
    }

    [Fact]
    public void CharactersOutsideTheBasicPlaneAreOneSymbol()
    {
        var vocab = new Vocabulary(["a😀", "😀b"]);
        Assert.Equal(4, vocab.Size);
        var encoded = vocab.Encode("a😀b");
        Assert.Equal(3, encoded.Length);
        Assert.Equal("a😀b", vocab.Decode(encoded));
    }

    [Fact]
    public void EncodingAnUnknownCharacterFails()
    {
        var vocab = new Vocabulary(["bob", "anna"]);
        var e = Assert.Throws<UserError>(() => vocab.Encode("bez"));
        Assert.Contains("'e'", e.Message);
    }

    [Fact]
    public void ADotInANameIsAnOrdinaryCharacter()
    {
        var vocab = new Vocabulary(["st. john", "jo"]);
        var encoded = vocab.Encode("st. john");
        Assert.DoesNotContain(Vocabulary.Boundary, encoded);
        Assert.Equal("st. john", vocab.Decode(encoded));
    }

    // ---------------------------------------------------------------------------------------------
    // Examples

    [Fact]
    public void ExamplesHaveOnePerCharacterPlusTheEndWithBoundaryPaddedContexts()
    {
        var vocab = new Vocabulary(["ab", "c"]);
        int a = vocab.Encode("a")[0], b = vocab.Encode("b")[0], c = vocab.Encode("c")[0];

        var ex = new Examples(["ab", "c"], vocab, 3);

        Assert.Equal(3, ex.K);
        Assert.Equal(3 + 2, ex.Count);
        int[][] contexts = [[0, 0, 0], [0, 0, a], [0, a, b], [0, 0, 0], [0, 0, c]];
        int[] next = [a, b, 0, c, 0];
        Assert.Equal(ex.Count * (3 + 1), ex.Tokens.Length);
        for (int i = 0; i < ex.Count; i++)
        {
            Assert.Equal(contexts[i], ex.Context(i).ToArray().Select(x => (int)x).ToArray());
            Assert.Equal(next[i], ex.Next(i));
        }
    }

    [Fact]
    public void ExamplesSlideTheWindowOverLongNames()
    {
        var vocab = new Vocabulary(["abcde"]);
        int[] id = "abcde".Select(ch => vocab.Encode(ch.ToString())[0]).ToArray();

        var ex = new Examples(["abcde"], vocab, 2);

        Assert.Equal(6, ex.Count);
        int[][] contexts = [[0, 0], [0, id[0]], [id[0], id[1]], [id[1], id[2]], [id[2], id[3]], [id[3], id[4]]];
        for (int i = 0; i < 6; i++)
        {
            Assert.Equal(contexts[i], ex.Context(i).ToArray().Select(x => (int)x).ToArray());
            Assert.Equal(i < 5 ? id[i] : 0, ex.Next(i));
        }
    }

    [Fact]
    public void ExamplesWithContextOne()
    {
        var vocab = new Vocabulary(["abc"]);
        var ex = new Examples(["abc"], vocab, 1);
        Assert.Equal(4, ex.Count);
        var ids = vocab.Encode("abc");
        Assert.Equal(new[] { 0, ids[0], ids[1], ids[2] }, Enumerable.Range(0, ex.Count).Select(i => (int)ex.Context(i)[0]));
        Assert.Equal(new[] { ids[0], ids[1], ids[2], 0 }, Enumerable.Range(0, ex.Count).Select(ex.Next));
    }

    [Fact]
    public void ExampleCountIsTotalLengthPlusOnePerName()
    {
        var vocab = new Vocabulary(TestData.TinyNames);
        var ex = new Examples(TestData.TinyNames, vocab, 4);
        Assert.Equal(TestData.TinyNames.Sum(n => n.Length + 1), ex.Count);
        Assert.Equal(TestData.TinyNames.Length, Enumerable.Range(0, ex.Count).Count(i => ex.Next(i) == 0));
    }

    // ---------------------------------------------------------------------------------------------
    // Split

    static List<string> ManyNames(int count) =>
        Enumerable.Range(0, count).Select(i => "n" + string.Concat(i.ToString().Select(d => (char)('a' + d - '0')))).ToList();

    [Theory]
    [InlineData(2, 1)]
    [InlineData(9, 1)]
    [InlineData(10, 1)]
    [InlineData(25, 2)]
    [InlineData(100, 10)]
    [InlineData(1001, 100)]
    public void SplitIsNinetyTenOnNamesWithAtLeastOneValidationName(int count, int validation)
    {
        var names = ManyNames(count);
        var corpus = Corpus.Split(names, new Rng(3, 1));
        Assert.Equal(validation, corpus.Validation.Length);
        Assert.Equal(count - validation, corpus.Train.Length);
        Assert.Empty(corpus.Train.Intersect(corpus.Validation));
        Assert.Equal(names.OrderBy(n => n, StringComparer.Ordinal), corpus.Train.Concat(corpus.Validation).OrderBy(n => n, StringComparer.Ordinal));
    }

    [Fact]
    public void SplitDependsOnTheSeedOnly()
    {
        var names = ManyNames(100);
        var a = Corpus.Split(names, new Rng(7, 1));
        var b = Corpus.Split(names, new Rng(7, 1));
        var c = Corpus.Split(names, new Rng(8, 1));
        Assert.Equal(a.Validation, b.Validation);
        Assert.Equal(a.Train, b.Train);
        Assert.NotEqual(a.Validation.OrderBy(x => x), c.Validation.OrderBy(x => x));
        Assert.Equal(ManyNames(100), names); // the caller's list is left alone
    }

    [Fact]
    public void SplitVocabularyCoversValidationNames()
    {
        // a character only a validation name has must still be in the vocabulary
        var names = new List<string> { "aa", "ab", "ba", "bb", "zz" };
        for (long seed = 0; seed < 10; seed++)
        {
            var corpus = Corpus.Split(names, new Rng(seed, 1));
            Assert.Equal(4, corpus.Vocab.Size);
            foreach (var n in corpus.Validation) Assert.Equal(n, corpus.Vocab.Decode(corpus.Vocab.Encode(n)));
        }
    }

    static List<string> NamesWithDistinctCharacters(int distinct)
    {
        // CJK ideographs, ten to a name: printable, not control, not whitespace, one UTF-16 unit each
        var chars = Enumerable.Range(0, distinct).Select(i => (char)(0x4E00 + i)).ToArray();
        return chars.Chunk(10).Select(c => new string(c)).ToList();
    }

    [Fact]
    public void SplitAcceptsTwoHundredFiftyFiveDistinctCharacters()
    {
        var corpus = Corpus.Split(NamesWithDistinctCharacters(255), new Rng(1, 1));
        Assert.Equal(256, corpus.Vocab.Size);
    }

    [Fact]
    public void SplitFailsOnMoreThanTwoHundredFiftyFiveDistinctCharacters()
    {
        var e = Assert.Throws<UserError>(() => Corpus.Split(NamesWithDistinctCharacters(256), new Rng(1, 1)));
        Assert.Equal(1, e.ExitCode);
        Assert.Contains("256", e.Message);
    }

    // ---------------------------------------------------------------------------------------------
    // Rng

    [Fact]
    public void RngIsReproducibleAndStreamsDiffer()
    {
        var a = new Rng(42, 3);
        var b = new Rng(42, 3);
        var c = new Rng(42, 4);
        var d = new Rng(43, 3);
        var xa = Enumerable.Range(0, 100).Select(_ => a.Next()).ToArray();
        Assert.Equal(xa, Enumerable.Range(0, 100).Select(_ => b.Next()).ToArray());
        Assert.NotEqual(xa, Enumerable.Range(0, 100).Select(_ => c.Next()).ToArray());
        Assert.NotEqual(xa, Enumerable.Range(0, 100).Select(_ => d.Next()).ToArray());
    }

    [Fact]
    public void RngSeedZeroStillWorks()
    {
        var r = new Rng(0);
        Assert.True(Enumerable.Range(0, 10).Select(_ => r.Next()).Distinct().Count() == 10);
    }

    [Fact]
    public void BelowIsInRangeAndRoughlyUniform()
    {
        var r = new Rng(5);
        var counts = new int[6];
        const int draws = 60_000;
        for (int i = 0; i < draws; i++) counts[r.Below(6)]++;
        Assert.All(counts, c => Assert.InRange(c, 9_500, 10_500)); // ±5%, ~12 standard deviations
        Assert.Equal(0, r.Below(1));
    }

    [Fact]
    public void NextDoubleIsInUnitInterval()
    {
        var r = new Rng(9);
        double sum = 0;
        for (int i = 0; i < 10_000; i++)
        {
            double x = r.NextDouble();
            Assert.InRange(x, 0.0, 1.0);
            Assert.True(x < 1.0);
            sum += x;
        }
        Assert.InRange(sum / 10_000, 0.48, 0.52);
    }

    [Fact]
    public void ShuffleIsAPermutation()
    {
        var items = Enumerable.Range(0, 50).ToArray();
        new Rng(1).Shuffle(items);
        Assert.Equal(Enumerable.Range(0, 50), items.OrderBy(x => x));
        Assert.NotEqual(Enumerable.Range(0, 50), items);
    }
}
