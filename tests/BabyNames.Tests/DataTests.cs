using System.Text;

namespace BabyNames.Tests;

/// <summary>Reading names, the vocabulary, the (context → next) examples, the split, and the
/// random numbers.</summary>
public class DataTests
{
    static List<string> Parse(string text) => Names.Parse(text, "test.txt");

    /// <summary>Bytes as the program reads a names file: decoded, then parsed.</summary>
    static List<string> Read(byte[] bytes) => Names.Parse(Names.Decode(bytes, "test.txt"), "test.txt");

    static UserError ReadFails(byte[] bytes)
    {
        var e = Assert.Throws<UserError>(() => Read(bytes));
        Assert.Equal(1, e.ExitCode);
        Assert.Contains("test.txt", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    static UserError ParseFails(string text) => ReadFails(TestData.Utf8(text));

    // ---------------------------------------------------------------------------------------------
    // Parsing

    [Fact]
    public void ParseHandlesCrlfBomCaseDuplicatesAndBlankLines()
    {
        byte[] bytes = [0xEF, 0xBB, 0xBF, .. TestData.Utf8("Anna\r\n\r\nBOB\r\n  anna  \r\nÉlodie\r\nJean-Luc\r\nO'Brien\r\n\t\r\n   \r\nbob\r\nANNA")];
        Assert.Equal(["anna", "bob", "élodie", "jean-luc", "o'brien"], Read(bytes));
    }

    [Fact]
    public void ParseKeepsAccentsHyphensApostrophesAndInnerSpaces()
    {
        var names = Parse("Zoë\nÖZLEM\nhans-peter\nd'arcy\nMary Ann\nAnaïs\nŁUKASZ\nΣοφία\n");
        Assert.Equal(["zoë", "özlem", "hans-peter", "d'arcy", "mary ann", "anaïs", "łukasz", "σοφία"], names);
    }

    [Fact]
    public void ParseWithoutTrailingNewlineKeepsTheLastName() => Assert.Equal(["ann", "bo"], Parse("ann\nbo"));

    [Fact]
    public void ALoneCarriageReturnIsAControlCharacterNotALineBreak()
    {
        // old Mac line ends: the whole file is one line with CRs inside; that is reported, not
        // silently taken as one long name
        Assert.Contains("U+000D", ParseFails("ann\rbob\rcid\r").Message);
    }

    [Fact]
    public void ParseNormalizesToNfcSoBothSpellingsOfANameAreOne()
    {
        // "anaïs" with U+00EF, and with i + U+0308 COMBINING DIAERESIS
        Assert.Equal(["ana\u00EFs", "bob"], Parse("ana\u00EFs\nana\u0069\u0308s\nbob\n"));
    }

    [Fact]
    public void TitlecaseFoldsToLowerCase()
    {
        // ǅ (U+01C5) is title case: neither upper nor lower; its lower case is ǆ (U+01C6)
        Assert.Equal(["\u01C6emal", "bob"], Parse("\u01C5emal\n\u01C6emal\n\u01C4EMAL\nbob\n"));
        Assert.Equal("\u01C6emal", Names.Normalize("\u01C5emal"));
    }

    [Fact]
    public void DottedCapitalIFoldsToI()
    {
        // İ (U+0130): its simple lower case is plain i, so "İpek" and "ipek" are one name
        Assert.Equal(["ipek", "bob"], Parse("\u0130pek\nipek\nIPEK\nbob\n"));
        Assert.Equal("ipek", Names.Normalize("\u0130PEK"));
    }

    [Fact]
    public void UnicodeFoldingThroughTheProgram()
    {
        using var file = new TempFile("\u01C5emal\n\u01C6emal\n\u0130pek\nipek\nbob\n");
        var json = Cli.Run("--names", file.Path, "--steps", "2", "--samples", "0", "--json").Json();
        Assert.Equal(3, json.GetProperty("names").GetInt32()); // ǆemal, ipek, bob
    }

    [Fact]
    public void AByteOrderMarkAtTheStartOfALineInsideTheFileIsIgnored()
    {
        // two files joined, the second with its mark
        byte[] bytes = [0xEF, 0xBB, 0xBF, .. TestData.Utf8("anna\nbob\n"), 0xEF, 0xBB, 0xBF, .. TestData.Utf8("bob\ncid\n")];
        Assert.Equal(["anna", "bob", "cid"], Read(bytes));
        using var file = new TempFile(bytes);
        var json = Cli.Run("--names", file.Path, "--steps", "2", "--samples", "0", "--json").Json();
        Assert.Equal(3, json.GetProperty("names").GetInt32());
        Assert.Equal(1 + 7, json.GetProperty("vocab_size").GetInt32()); // a n b o c i d, no mark
    }

    [Theory]
    [InlineData("\u200B", "U+200B")] // zero-width space
    [InlineData("\u202E", "U+202E")] // right-to-left override
    [InlineData("\u2066", "U+2066")] // left-to-right isolate
    [InlineData("\uFEFF", "U+FEFF")] // a byte-order mark inside a name
    [InlineData("\u00A0", "U+00A0")] // no-break space
    [InlineData("\t", "U+0009")]
    public void InvisibleAndControlCharactersAreRefusedWithOneLine(string character, string code)
    {
        using var file = new TempFile($"anna\nbo{character}b\ncid\n");
        var line = InProcess.FailsBeforeTraining(1, "--names", file.Path, "--steps", "5");
        Assert.Contains(file.Path, line);
        Assert.Contains("line 2", line);
        Assert.Contains(code, line);
    }

    [Fact]
    public void ZeroWidthJoinersThatScriptsSpellWithAreLetters()
    {
        // Persian and Indic spellings use ZWNJ (U+200C) and ZWJ (U+200D) inside words
        var names = Parse("\u0645\u06CC\u200C\u0646\u0627\n\u0915\u094D\u200D\u0937\nbob\n");
        Assert.Equal(3, names.Count);
        Assert.Null(Names.Problem(0x200C));
        Assert.Null(Names.Problem(0x200D));
    }

    [Fact]
    public void ProblemNamesWhatIsWrongWithALetter()
    {
        Assert.Null(Names.Problem('a'));
        Assert.Null(Names.Problem(' '));
        Assert.Null(Names.Problem('-'));
        Assert.Null(Names.Problem(0x1D11E));
        Assert.Contains("control", Names.Problem(0x07));
        Assert.Contains("space", Names.Problem(0x2003));
        Assert.Contains("invisible", Names.Problem(0x200B));
        Assert.NotNull(Names.Problem(0xD800)); // a lone surrogate is no code point of text
        Assert.NotNull(Names.Problem(0x110000));
    }

    [Fact]
    public void TestsRunWithTheAppsGlobalizationMode()
    {
        // NFC normalization needs ICU, so neither the app nor the tests may use invariant mode;
        // if this fails, the two have drifted apart
        Assert.False(AppContext.TryGetSwitch("System.Globalization.Invariant", out bool invariant) && invariant);
        var csproj = File.ReadAllText(Path.Combine(TestData.AppFolder, "BabyNames.csproj"));
        Assert.DoesNotContain("<InvariantGlobalization>true</InvariantGlobalization>", csproj);
    }

    [Fact]
    public void ParseFailsOnEmptyInput() => Assert.Contains("no names", ReadFails([]).Message);

    [Fact]
    public void ParseFailsOnABomAlone() => Assert.Contains("no names", ReadFails([0xEF, 0xBB, 0xBF]).Message);

    [Fact]
    public void ParseFailsOnOnlyBlankLines() => Assert.Contains("no names", ParseFails("\n\r\n   \n\t\n\n").Message);

    [Theory]
    [InlineData("anna\n")]
    [InlineData("anna\nANNA\n  Anna \n")]
    public void ParseFailsOnOneDistinctName(string text) => Assert.Contains("one distinct name", ParseFails(text).Message);

    [Fact]
    public void ParseFailsOnNulBytesAndSaysWhere()
    {
        var e = ParseFails("anna\nb\0b\ncarl\nbob\ndan\nemil\n");
        Assert.Contains("line 2", e.Message);
        Assert.Contains("U+0000", e.Message);
    }

    [Fact]
    public void Utf16WithAByteOrderMarkIsReportedAsUtf16()
    {
        Assert.Contains("UTF-16", ReadFails([.. Encoding.Unicode.GetPreamble(), .. Encoding.Unicode.GetBytes("anna\nbob\n")]).Message);
        Assert.Contains("UTF-16", ReadFails([.. Encoding.BigEndianUnicode.GetPreamble(), .. Encoding.BigEndianUnicode.GetBytes("anna\nbob\n")]).Message);
    }

    [Theory]
    [InlineData("anna\nbob\ncid\n", false)]
    [InlineData("anna\nbob\ncid\n", true)]
    [InlineData("Élodie\nZoë\nJürgen\n", false)]
    [InlineData("Анна\nБорис\nОльга\nИван\n", false)] // Cyrillic
    [InlineData("Σοφία\nΝίκη\nΕλένη\n", false)]       // Greek
    [InlineData("Анна\nБорис\nОльга\nИван\n", true)]
    public void Utf16WithoutAByteOrderMarkIsReportedAsUtf16(string text, bool bigEndian)
    {
        var encoding = bigEndian ? Encoding.BigEndianUnicode : Encoding.Unicode;
        var e = ReadFails(encoding.GetBytes(text));
        Assert.Contains("UTF-16", e.Message);
    }

    [Theory]
    [InlineData(new byte[] { (byte)'a', (byte)'n', 0xFF, (byte)'\n', (byte)'b', (byte)'o' })]     // never valid
    [InlineData(new byte[] { (byte)'a', 0xC3, (byte)'\n', (byte)'b', (byte)'o' })]                // cut-off sequence
    [InlineData(new byte[] { (byte)'a', 0xC0, 0xAF, (byte)'\n', (byte)'b', (byte)'o' })]           // overlong encoding
    [InlineData(new byte[] { (byte)'a', 0xED, 0xA0, 0x80, (byte)'\n', (byte)'b', (byte)'o' })]     // encoded surrogate
    public void ParseFailsOnInvalidUtf8(byte[] bytes) => Assert.Contains("UTF-8", ReadFails(bytes).Message);

    [Fact]
    public void ParseAcceptsNamesOfExactlyFiftyLetters()
    {
        string fifty = new('a', 50), accented = string.Concat(Enumerable.Repeat("é", 50)), emoji = string.Concat(Enumerable.Repeat("😀", 50));
        Assert.Equal([fifty, accented, emoji], Parse($"{fifty}\n{accented}\n{emoji}\n")); // letters, not bytes or UTF-16 units
    }

    [Fact]
    public void ParseFailsOnANameOfFiftyOneLetters()
    {
        var e = ParseFails($"ann\nbob\n{new string('x', 51)}\ncid\n");
        Assert.Contains("line 3", e.Message);
        Assert.Contains("51", e.Message);
    }

    [Fact]
    public void FiftyLettersAfterTrimmingIsFine() => Assert.Equal(50, Parse($"   {new string('a', 50)}   \nbob\n")[0].Length);

    [Fact]
    public void LinesDropAByteOrderMarkAtTheStartOfEach() =>
        Assert.Equal(["anna", "bob", "c\uFEFFid", ""], Names.Lines("\uFEFFanna\n\uFEFFbob\nc\uFEFFid\n"));

    [Fact]
    public void LengthCountsCodePoints()
    {
        Assert.Equal(0, Names.Length(""));
        Assert.Equal(4, Names.Length("anna"));
        Assert.Equal(3, Names.Length("a\U0001D11Eo"));
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
    public void ReadFolderFails()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<UserError>(() => Names.Read(dir.Path));
        Assert.Equal(1, e.ExitCode);
        Assert.Contains("folder", e.Message);
    }

    [Fact]
    public void ReadFileWithCrlfAndBom()
    {
        using var file = new TempFile([0xEF, 0xBB, 0xBF, .. TestData.Utf8("Ann\r\nBo\r\n")]);
        Assert.Equal(["ann", "bo"], Names.Read(file.Path));
    }

    [Fact]
    public void ReadWithoutPathGivesTheBundledNames()
    {
        var names = Names.Read(null);
        Assert.Equal(TextReport.BundledNames(), names);
        Assert.True(names.Count > 1000);
    }

    // ---------------------------------------------------------------------------------------------
    // Vocabulary

    [Fact]
    public void VocabularyHasEachLetterOncePlusTheBoundary()
    {
        var vocab = new Vocabulary(["bob", "anna", "ñoño"]);
        Assert.Equal(6, vocab.Size); // boundary, a, b, n, o, ñ
        Assert.Equal(0, Vocabulary.Boundary);
        var ids = "abnoñ".Select(c => Assert.Single(vocab.Encode(c.ToString()))).ToList();
        Assert.Equal(5, ids.Distinct().Count());
        Assert.All(ids, id => Assert.InRange(id, 1, vocab.Size - 1)); // 0 is the boundary's alone
        Assert.Equal(".", vocab.Show(Vocabulary.Boundary));
        Assert.Equal("abnoñ", string.Concat(vocab.Letters)); // in code point order
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
    public void LettersOutsideTheBasicPlaneAreOneSymbol()
    {
        var vocab = new Vocabulary(["a😀", "😀b"]);
        Assert.Equal(4, vocab.Size);
        var encoded = vocab.Encode("a😀b");
        Assert.Equal(3, encoded.Length);
        Assert.Equal("a😀b", vocab.Decode(encoded));
    }

    [Fact]
    public void EncodingAnUnknownLetterFails()
    {
        var vocab = new Vocabulary(["bob", "anna"]);
        var e = Assert.Throws<UserError>(() => vocab.Encode("bez"));
        Assert.Contains("'e'", e.Message);
        Assert.False(vocab.Knows("bez", out var unknown));
        Assert.Equal(new Rune('e'), unknown);
        Assert.True(vocab.Knows("nab", out _));
    }

    [Fact]
    public void ADotInANameIsAnOrdinaryLetter()
    {
        var vocab = new Vocabulary(["st. john", "jo"]);
        var encoded = vocab.Encode("st. john");
        Assert.DoesNotContain(Vocabulary.Boundary, encoded);
        Assert.Equal("st. john", vocab.Decode(encoded));
    }

    // ---------------------------------------------------------------------------------------------
    // Examples

    [Fact]
    public void ExamplesHaveOnePerLetterPlusTheEndWithBoundaryPaddedContexts()
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
        int[] id = [.. "abcde".Select(ch => vocab.Encode(ch.ToString())[0])];

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
        Assert.Equal([0, ids[0], ids[1], ids[2]], Enumerable.Range(0, ex.Count).Select(i => (int)ex.Context(i)[0]));
        Assert.Equal([ids[0], ids[1], ids[2], 0], Enumerable.Range(0, ex.Count).Select(ex.Next));
    }

    [Fact]
    public void ExamplesCountLettersNotUtf16Units()
    {
        var vocab = new Vocabulary(["a\U0001D11Eo"]);
        var ex = new Examples(["a\U0001D11Eo"], vocab, 2);
        Assert.Equal(4, ex.Count);
        Assert.Equal(vocab.Encode("\U0001D11E")[0], ex.Next(1));
    }

    [Fact]
    public void ExampleCountIsTotalLengthPlusOnePerName()
    {
        var vocab = new Vocabulary(TestData.TinyNames);
        var ex = new Examples(TestData.TinyNames, vocab, 4);
        Assert.Equal(TestData.TinyNames.Sum(n => n.Length + 1), ex.Count);
        Assert.Equal(TestData.TinyNames.Length, Enumerable.Range(0, ex.Count).Count(i => ex.Next(i) == 0));
    }

    [Fact]
    public void ExamplesOfANameWithAnUnknownLetterFail()
    {
        var vocab = new Vocabulary(["ab"]);
        Assert.Contains("'z'", Assert.Throws<UserError>(() => new Examples(["az"], vocab, 2)).Message);
    }

    // ---------------------------------------------------------------------------------------------
    // Split

    static List<string> ManyNames(int count) =>
        [.. Enumerable.Range(0, count).Select(i => "n" + string.Concat(i.ToString().Select(d => (char)('a' + d - '0'))))];

    [Theory]
    [InlineData(2, 1)]
    [InlineData(9, 1)]
    [InlineData(10, 1)]
    [InlineData(25, 2)]
    [InlineData(100, 10)]
    [InlineData(1001, 100)]
    public void SplitIsNinetyTenWithAtLeastOneValidationName(int count, int validation)
    {
        var names = ManyNames(count);
        var corpus = Corpus.Split(names, new Rng(3, 1));
        Assert.Equal(validation, corpus.Validation.Length);
        Assert.Equal(count - validation, corpus.Train.Length);
        Assert.Empty(corpus.Train.Intersect(corpus.Validation));
        Assert.Equal(names.Order(StringComparer.Ordinal), corpus.Train.Concat(corpus.Validation).Order(StringComparer.Ordinal));
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
        Assert.NotEqual(a.Validation.Order(), c.Validation.Order());
        Assert.Equal(ManyNames(100), names); // the caller's list is left alone
    }

    [Fact]
    public void SplitVocabularyCoversValidationNames()
    {
        // a letter only a validation name has must still be in the vocabulary
        List<string> names = ["aa", "ab", "ba", "bb", "zz"];
        for (long seed = 0; seed < 10; seed++)
        {
            var corpus = Corpus.Split(names, new Rng(seed, 1));
            Assert.Equal(4, corpus.Vocab.Size);
            foreach (var n in corpus.Validation) Assert.Equal(n, corpus.Vocab.Decode(corpus.Vocab.Encode(n)));
        }
    }

    static List<string> NamesWithDistinctLetters(int distinct) =>
        // CJK ideographs, ten to a name: printable, not control, not space, one UTF-16 unit each
        [.. Enumerable.Range(0, distinct).Select(i => (char)(0x4E00 + i)).Chunk(10).Select(c => new string(c))];

    [Fact]
    public void SplitAcceptsTwoHundredFiftyFiveDistinctLetters() =>
        Assert.Equal(256, Corpus.Split(NamesWithDistinctLetters(255), new Rng(1, 1)).Vocab.Size);

    [Fact]
    public void SplitFailsOnMoreThanTwoHundredFiftyFiveDistinctLetters()
    {
        var e = Assert.Throws<UserError>(() => Corpus.Split(NamesWithDistinctLetters(256), new Rng(1, 1)));
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
        Assert.Equal(10, Enumerable.Range(0, 10).Select(_ => r.Next()).Distinct().Count());
    }

    [Fact]
    public void BelowIsInRangeAndRoughlyUniform()
    {
        var r = new Rng(5);
        var counts = new int[6];
        const int draws = 60_000;
        for (int i = 0; i < draws; i++) counts[r.Below(6)]++;
        Assert.All(counts, c => Assert.InRange(c, 9_500, 10_500)); // ±5%, about 12 standard deviations
        Assert.Equal(0, r.Below(1));
    }

    [Fact]
    public void BelowIntoASpanDrawsWhatSingleCallsDraw()
    {
        var one = new Rng(11, 3);
        var many = new Rng(11, 3);
        var drawn = new int[1000];
        many.Below(37, drawn);
        Assert.Equal(Enumerable.Range(0, 1000).Select(_ => one.Below(37)), drawn);
        Assert.Equal(one.Next(), many.Next()); // and both streams are at the same place after
    }

    [Fact]
    public void NextDoubleIsInUnitInterval()
    {
        var r = new Rng(9);
        double sum = 0;
        for (int i = 0; i < 10_000; i++)
        {
            double x = r.NextDouble();
            Assert.True(x is >= 0 and < 1, $"{x}");
            sum += x;
        }
        Assert.InRange(sum / 10_000, 0.48, 0.52);
    }

    [Fact]
    public void NextNormalHasMeanZeroAndVarianceOne()
    {
        var r = new Rng(13);
        var x = Enumerable.Range(0, 40_000).Select(_ => r.NextNormal()).ToArray();
        double mean = x.Average(), variance = x.Select(v => (v - mean) * (v - mean)).Average();
        Assert.InRange(mean, -0.03, 0.03);    // 6 standard errors
        Assert.InRange(variance, 0.96, 1.04); // about 6 standard errors
        Assert.All(x, v => Assert.True(double.IsFinite(v)));
    }

    [Fact]
    public void ShuffleIsAPermutation()
    {
        var items = Enumerable.Range(0, 50).ToArray();
        new Rng(1).Shuffle(items);
        Assert.Equal(Enumerable.Range(0, 50), items.Order());
        Assert.NotEqual(Enumerable.Range(0, 50), items);
    }
}
