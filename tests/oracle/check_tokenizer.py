"""Compares `emotune tokenize` with Hugging Face's tokenizers (test-only, from PyPI): BertTokenizer
(the Python one, from vocab.txt) and BertTokenizerFast (the tokenizers library, from tokenizer.json),
on every GoEmotions text and on a set of adversarial strings, for distilbert-base-uncased and
all-MiniLM-L6-v2's files; RoBERTa's byte-level BPE likewise; and every token's offsets in the text.
Usage: check_tokenizer.py EMOTUNE_BINARY [SHARED_DIR]
(SHARED_DIR defaults to $EMOTUNE_SHARED; exits 77, "skipped", when neither is there)."""
import json
import os
import random
import subprocess
import sys
import unicodedata

from transformers import BertTokenizer, BertTokenizerFast, MPNetTokenizer, MPNetTokenizerFast

# WordPiece models: their folder in $EMOTUNE_SHARED/models/ and transformers' two tokenizer classes.
WORDPIECE_MODELS = [("distilbert-base-uncased", BertTokenizer, BertTokenizerFast),
                    ("sentence-transformers--all-MiniLM-L6-v2", BertTokenizer, BertTokenizerFast),
                    ("sentence-transformers--all-mpnet-base-v2", MPNetTokenizer, MPNetTokenizerFast)]


def adversarial(seed=7, count=600):
    fixed = [
        "", " ", "\t\n", "Héllo Wörld", "ÀÉÎÕÜ çñ", "ΟΔΟΣ ΣΟΦΟΣ σοφός", "İstanbul", "ǅemal", "ß ẞ ﬃ",
        "love🇨🇦", "😀😃 👍🏽 ❤️", "中文字符和English混合", "日本語のテキスト", "한국어 텍스트",
        "[NAME] is [RELIGION]", "hello [SEP] world [CLS][MASK] [PAD][UNK]", "[sep] [Cls]",
        "zero\u200bwidth\u200cjoin\u200d", "soft\u00adhyphen", "bell\x07char", "a\u2028b\u2029c",
        "nbsp\u00a0here\u3000ideographic", "x" * 100, "x" * 101, "é" * 100 + "!", "a.b,c;d:e!f?g",
        "«quotes» „low“ ‘single’", "—dash–en‐hyphen", "¿Qué? ¡Sí!", "$100 & 50% @home #tag ^_^ ~`|",
        "\\n literal backslash \\", "e\u0301 combining", "ﬁne ligature", "Ⅻ roman", "①②③ circled",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math", "\u0000nul", "\ufeffbom", "tab\there", "مرحبا بالعالم", "שלום עולם",
        "Привет, мир!", "Ελληνικά κείμενα", "ไทย", "देवनागरी", "a\u0303\u0304\u0305", "ǈ ǉ Ǌ",
        "ΑΣ. ΣΑ", "ﾊﾝｶｸ ｶﾀｶﾅ", "ｆｕｌｌｗｉｄｔｈ", "\U0002A700 ext", "\uF900 compat",
        "a\u0301\u0316\u0301\u0316 mixed classes", "e\u0316\u0301\u0327x \u1100\u1161\u11a8 hangul jamo",
    ]
    rng = random.Random(seed)
    pools = [
        [chr(c) for c in range(0x20, 0x7F)],
        [chr(c) for c in range(0xA0, 0x250)],
        [chr(c) for c in range(0x370, 0x400)],
        [chr(c) for c in range(0x2000, 0x2070)],
        [chr(c) for c in range(0x3000, 0x3100)],
        [chr(c) for c in range(0x4E00, 0x4E80)],
        [chr(c) for c in range(0x1F300, 0x1F650)],
        [chr(c) for c in range(0x300, 0x370)],
    ]
    out = list(fixed)
    while len(out) < count:
        n = rng.randint(1, 40)
        s = "".join(rng.choice(rng.choice(pools)) for _ in range(n))
        s = "".join(c for c in s if unicodedata.category(c) != "Cn" and c != "\n")
        out.append(s)
    return out


def bpe_adversarial():
    """What the GPT-2 pattern and the added tokens make hard: whitespace runs before words, numbers and
    punctuation, contractions in both cases, special tokens written in the text, long words."""
    return [
        "a  b   c    d", "  leading", "trailing  ", "\t tab\t\tmix \u00a0nbsp\u3000wide", "x \r y \x0b z",
        "it's I'M we're they've I'll he'd she'S 'tis '' ''s", "don't!!'s", "123 4567 12.5 ½ ٣",
        "<s> inside </s> text", "a<mask>b", "hello <mask> world", "  <mask>  ", "<pad><unk>", "<s",
        "emoji 👩‍👩‍👧‍👦 family 🏳️‍🌈 flag", "RTL \u202eevil\u202c", "ＦＵＬＬ width", "x" * 3000,
        "word " * 600, "😀" * 300, "e\u0301\u0301 marks", "CamelCaseWordsAndNUMBERS123abc",
    ]


def check_byte_level_bpe(binary, shared, texts, n_goemotions):
    """RoBERTa's byte-level BPE from tokenizer.json (and from vocab.json + merges.txt alone) against
    the tokenizers library (RobertaTokenizerFast) and transformers' Python RobertaTokenizer."""
    import shutil
    import tempfile
    from tokenizers import Tokenizer
    from transformers import RobertaTokenizer, RobertaTokenizerFast
    mismatches = 0
    tmp = tempfile.mkdtemp(prefix="emotune_bpe_")
    try:
        for name in ("roberta-base", "SamLowe--roberta-base-go_emotions"):
            model = os.path.join(shared, "models", name)
            slow_dir = os.path.join(tmp, name)
            os.makedirs(slow_dir)
            for f in os.listdir(model):
                if f != "tokenizer.json":
                    shutil.copy(os.path.join(model, f), slow_dir)
            raw = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
            raw.no_padding()
            raw.enable_truncation(512)
            oracles = [("tokenizers", lambda ts: [e.ids for e in raw.encode_batch(ts)]),
                       ("RobertaTokenizerFast", lambda ts: RobertaTokenizerFast.from_pretrained(model)(
                           ts, truncation=True, max_length=512)["input_ids"]),
                       ("RobertaTokenizer", lambda ts: RobertaTokenizer.from_pretrained(model)(
                           ts, truncation=True, max_length=512)["input_ids"])]
            for source, directory in (("tokenizer.json", model), ("vocab.json + merges.txt", slow_dir)):
                proc = subprocess.run([binary, "tokenize", "--model", directory], input="\n".join(texts).encode() + b"\n",
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                if proc.returncode != 0:
                    print(f"emotune tokenize failed on {directory}: {proc.stderr.decode()}")
                    mismatches += 1
                    continue
                got = [json.loads(line)["ids"] for line in proc.stdout.decode().splitlines()]
                for oracle_name, oracle in oracles:
                    want = oracle(texts)
                    differ = [i for i in range(len(texts)) if got[i] != want[i]]
                    for i in differ[:5]:
                        print(f"MISMATCH {name} ({source}) vs {oracle_name} #{i}: {texts[i][:200]!r}\n"
                              f"  emotune: {got[i][:40]}\n  {oracle_name}: {want[i][:40]}")
                    print(f"{name} from {source} vs {oracle_name}: {len(texts) - len(differ)}/{len(texts)} identical "
                          f"({n_goemotions} GoEmotions texts, {len(texts) - n_goemotions} adversarial)")
                    mismatches += len(differ)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return mismatches


def check_wordpiece(binary, shared, texts, n_goemotions):
    """Every WordPiece model's ids, read from its vocab.txt + tokenizer_config.json (against transformers'
    Python tokenizer and the tokenizers library) and from its tokenizer.json alone (against the
    tokenizers library)."""
    import shutil
    import tempfile
    mismatches = 0
    tmp = tempfile.mkdtemp(prefix="emotune_wordpiece_")
    try:
        for name, slow, fast in WORDPIECE_MODELS:
            model = os.path.join(shared, "models", name)
            only_json = os.path.join(tmp, name)
            os.makedirs(only_json)
            shutil.copy(os.path.join(model, "tokenizer.json"), only_json)
            for source, folder in (("vocab.txt", model), ("tokenizer.json", only_json)):
                proc = subprocess.run([binary, "tokenize", "--model", folder], input="\n".join(texts).encode() + b"\n",
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
                got = [json.loads(line)["ids"] for line in proc.stdout.decode().splitlines()]
                assert len(got) == len(texts), f"{len(got)} outputs for {len(texts)} inputs"
                # tokenizer.json is the tokenizers library's format: its own reading is the oracle there.
                oracles = (slow, fast) if source == "vocab.txt" else (fast,)
                for oracle in (o.from_pretrained(model) for o in oracles):
                    want = oracle(texts, truncation=True, max_length=512)["input_ids"]
                    differ = [i for i in range(len(texts)) if got[i] != want[i]]
                    for i in differ[:10]:
                        print(f"MISMATCH {name} ({source}) vs {type(oracle).__name__} #{i}: {texts[i][:200]!r}\n"
                              f"  emotune: {oracle.convert_ids_to_tokens(got[i])[:40]}\n  {type(oracle).__name__}: "
                              f"{oracle.convert_ids_to_tokens(want[i])[:40]}")
                    print(f"{name} from {source} vs {type(oracle).__name__}: {len(texts) - len(differ)}/{len(texts)} "
                          f"identical ({n_goemotions} GoEmotions texts, {len(texts) - n_goemotions} adversarial)")
                    mismatches += len(differ)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return mismatches


def check_offsets(binary, shared, texts, n_goemotions):
    """Each token's place in the text (`tokenize --offsets`, what explanations report) against the
    tokenizers library's offsets, for both tokenizer kinds (WordPiece and byte-level BPE)."""
    from tokenizers import Tokenizer
    mismatches = 0
    for name in [m for m, _, _ in WORDPIECE_MODELS] + ["roberta-base", "SamLowe--roberta-base-go_emotions"]:
        model = os.path.join(shared, "models", name)
        oracle = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
        oracle.no_padding()
        oracle.enable_truncation(512)
        want = [[list(o) for o in e.offsets] for e in oracle.encode_batch(texts)]
        proc = subprocess.run([binary, "tokenize", "--offsets", "--model", model], input="\n".join(texts).encode() + b"\n",
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
        got = [json.loads(line)["offsets"] for line in proc.stdout.decode().splitlines()]
        differ = [i for i in range(len(texts)) if got[i] != want[i]]
        for i in differ[:5]:
            print(f"OFFSETS DIFFER {name} #{i}: {texts[i][:200]!r}\n  emotune: {got[i][:30]}\n  tokenizers: {want[i][:30]}")
        print(f"{name} offsets vs tokenizers: {len(texts) - len(differ)}/{len(texts)} identical "
              f"({n_goemotions} GoEmotions texts, {len(texts) - n_goemotions} adversarial)")
        mismatches += len(differ)
    return mismatches


def main():
    binary = sys.argv[1]
    shared = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("EMOTUNE_SHARED", "")
    if not shared or not os.path.isdir(os.path.join(shared, "models")):
        print("SKIPPED: EMOTUNE_SHARED not set or without models/")
        sys.exit(77)
    texts = []
    for split in ("train", "dev", "test"):
        with open(os.path.join(shared, "data", "goemotions", f"{split}.tsv"), encoding="utf-8") as f:
            texts += [line.rstrip("\n").split("\t")[0] for line in f]
    n_goemotions = len(texts)
    texts += [t.replace("\n", " ") for t in adversarial()]
    mismatches = 0
    mismatches += check_wordpiece(binary, shared, texts + bpe_adversarial(), n_goemotions)
    mismatches += check_byte_level_bpe(binary, shared, texts + bpe_adversarial(), n_goemotions)
    mismatches += check_offsets(binary, shared, texts + bpe_adversarial(), n_goemotions)
    model = os.path.join(shared, "models", "distilbert-base-uncased")
    # Invalid UTF-8 never stops a run: bytes become U+FFFD (dropped) and the lines are counted.
    proc = subprocess.run([binary, "tokenize", "--model", model], input=b"hello\xc3\n\xffworld\nfine\n",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = [json.loads(l)["tokens"] for l in proc.stdout.decode().splitlines()]
    if proc.returncode != 0 or out != [["[CLS]", "hello", "[SEP]"], ["[CLS]", "world", "[SEP]"], ["[CLS]", "fine", "[SEP]"]] \
            or "2 input line(s)" not in proc.stderr.decode():
        print(f"invalid UTF-8 handling wrong: rc={proc.returncode} out={out} err={proc.stderr.decode()!r}")
        mismatches += 1
    # A missing vocabulary: one error line naming the path, exit 2.
    proc = subprocess.run([binary, "tokenize", "--vocab", "/nonexistent/vocab.txt"], input=b"x\n",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = proc.stderr.decode().strip().splitlines()
    if proc.returncode != 2 or len(err) != 1 or "/nonexistent/vocab.txt" not in err[0]:
        print(f"missing vocabulary not reported as one line with exit 2: rc={proc.returncode} err={err}")
        mismatches += 1
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
