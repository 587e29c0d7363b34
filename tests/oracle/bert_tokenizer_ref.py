"""Test-only oracle: Hugging Face's slow BertTokenizer behaviour, written from its algorithm with
Python's own unicodedata and str.lower(), which define it. Used to check emotune's token ids."""
import unicodedata


class ReferenceBertTokenizer:
    def __init__(self, vocab_path, lower_case=True, strip_accents=None, chinese=True):
        with open(vocab_path, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.lower_case = lower_case
        self.strip = lower_case if strip_accents is None else strip_accents
        self.chinese = chinese
        self.specials = ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]

    # --- character classes -------------------------------------------------------------
    @staticmethod
    def _control(ch):
        if ch in "\t\n\r":
            return False
        return unicodedata.category(ch).startswith("C")

    @staticmethod
    def _space(ch):
        return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"

    @staticmethod
    def _punct(ch):
        cp = ord(ch)
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
            return True
        return unicodedata.category(ch).startswith("P")

    @staticmethod
    def _cjk(cp):
        ranges = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
                  (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]
        return any(lo <= cp <= hi for lo, hi in ranges)

    # --- pipeline ----------------------------------------------------------------------
    def _split_specials(self, text):
        pieces, start, i = [], 0, 0
        while i < len(text):
            hit = next((s for s in self.specials if text.startswith(s, i)), None)
            if hit:
                pieces.append((text[start:i], False))
                pieces.append((hit, True))
                i += len(hit)
                start = i
            else:
                i += 1
        pieces.append((text[start:], False))
        return pieces

    def _basic(self, text):
        if self.lower_case:  # character by character, as PreTrainedTokenizer.tokenize does
            text = "".join(c if c == "\n" else c.lower() for c in text)
        out = []
        for ch in text:
            if ord(ch) in (0, 0xFFFD) or self._control(ch):
                continue
            out.append(" " if self._space(ch) else ch)
        text = "".join(out)
        if self.chinese:
            text = "".join(f" {c} " if self._cjk(ord(c)) else c for c in text)
        text = unicodedata.normalize("NFC", text)
        words = []
        for word in text.split():
            if self.lower_case:
                word = word.lower()
            if self.strip:
                word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
            current = []
            for ch in word:
                if self._punct(ch):
                    if current:
                        words.append("".join(current))
                        current = []
                    words.append(ch)
                else:
                    current.append(ch)
            if current:
                words.append("".join(current))
        return " ".join(words).split()

    def _wordpiece(self, word):
        if len(word) > 100:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in self.vocab:
                    found = sub
                    break
                end -= 1
            if found is None:
                return ["[UNK]"]
            pieces.append(found)
            start = end
        return pieces

    def encode(self, text, max_length=512):
        tokens = []
        for piece, special in self._split_specials(text):
            if special:
                tokens.append(piece)
            else:
                for word in self._basic(piece):
                    tokens.extend(self._wordpiece(word))
        tokens = tokens[: max_length - 2]
        tokens = ["[CLS]"] + tokens + ["[SEP]"]
        return [self.vocab[t] for t in tokens], tokens
