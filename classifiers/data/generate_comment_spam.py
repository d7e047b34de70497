"""Generate ``comment_spam_generated.jsonl``: team-written comment spam and ham, EN and JA, from templates.

Every phrase below was written by the replyguard team for this file (nothing is taken from a
dataset). The generator combines them with slots (handles, made-up domains, amounts, emoji) and
style transforms (shouting, misspellings, letter spacing, stretched letters, no punctuation,
full-width letters in Japanese) so that the spam model sees the many surface forms real comment
spam takes: self-promotion, sub4sub / follow-back, link drops, giveaways and fake prizes,
impersonation of the creator or the brand, crypto/"mentor" testimonials, adult/bot bait, and
cheap follower sales. Ham covers the comments real viewers and customers write, including hard
negatives that talk *about* spam, links, giveaways or channels without being spam.

Deterministic: ``python classifiers/data/generate_comment_spam.py`` rewrites the file
byte-for-byte identically (seed 20261127). The evaluation set in ``eval/data`` was written by
hand, independently, and is never generated from these phrases (a test checks that the two do
not share phrasing).
"""

from __future__ import annotations

import json
import random
import unicodedata
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from classifiers.data.comment_spam_compose import compose  # noqa: E402

SEED = 20261127
COMPOSE_SEED = 20261128
OUT = Path(__file__).resolve().parent / "comment_spam_generated.jsonl"

HANDLES = [
    "@mia.beats",
    "@kenji_vlogs",
    "@lunacraftz",
    "@dailyfitwithtom",
    "@the.real.sora",
    "@cookwithnana",
    "@gamerzone_x",
    "@yuki_art22",
    "@trendy_closet",
    "@mark.trades",
    "@nightcore.hub",
    "@hana_diary",
]
CHANNELS = [
    "Mia Beats",
    "Kenji Vlogs",
    "LunaCraft",
    "Daily Fit",
    "Sora Music",
    "Nana Kitchen",
    "GamerZone",
    "Yuki Art",
    "Trendy Closet",
    "Chill Lofi Room",
    "Tokyo Walks",
    "Pixel Plays",
]
DOMAINS = [
    "bit.ly/3xQz7",
    "tinyurl.com/freegift9",
    "promo-winner.site",
    "giftcard-drop.online",
    "cashapp-bonus.xyz",
    "my-shop-deals.store",
    "t.me/profit_club",
    "wa.me/447700900123",
    "linktr.ee/mia.beats",
    "free-robux.gg",
    "claimnow.link",
    "shorturl.at/abX12",
    "sub4sub-hub.app",
    "lucky-spin.info",
    "crypto-mentor.biz",
]
JA_DOMAINS = ["tousen-jp.net", "present-campaign.jp", "line.me/ti/p/xxab12", "kabu-juku.site", "muryou-gift.xyz"]
PRIZES = [
    "iPhone 16",
    "PS5",
    "$500 gift card",
    "$1000 Amazon card",
    "MacBook",
    "free merch",
    "10,000 coins",
    "Nintendo Switch",
    "AirPods",
    "VIP tickets",
]
JA_PRIZES = ["iPhone", "Amazonギフト券1万円分", "現金10万円", "Switch", "限定グッズ", "PayPay5000円分"]
EMOJI = ["🔥", "👇", "💯", "🎁", "✅", "😍", "🙏", "💰", "🚀", "👉", "❤️", "✨", "😂", "🤑"]

SPAM_EN = {
    "self_promo": [
        "check out my channel {ch} i post {thing} every week",
        "hey guys i just started a channel about {thing}, would mean a lot if you checked it out",
        "if you like this you'll love my latest video, link in my profile",
        "i make {thing} too!! go watch my channel pls",
        "{ch} here, new video just dropped, go see it",
        "anyone who reads this, please visit my channel, trying to hit 1k",
        "small creator here 🙏 subscribe to me and i'll make more {thing}",
        "my cover of this song is on my page, tell me what you think",
        "not to self promote but my {thing} videos are way better lol",
        "pls sub to my channel i am only {n} subs away from 1000",
    ],
    "sub4sub": [
        "sub4sub anyone? reply done and i'll sub back",
        "follow me and i follow back 100%",
        "f4f l4l let's grow together",
        "who wants to do sub for sub, comment below",
        "i sub to everyone who subs to me, promise",
        "like my last post and i will like 3 of yours",
        "follow back? just followed you {h}",
        "sub to me and reply so i can sub back ❤️",
    ],
    "link_drop": [
        "{url}",
        "free stuff here {url}",
        "watch the full video here {url}",
        "omg look at this {url}",
        "the uncensored version is at {url}",
        "get it cheaper at {url}",
        "found the same thing for half price {url}",
        "you need to see this {url} trust me",
        "click here for the secret method {url}",
        "full movie HD {url}",
    ],
    "giveaway": [
        "🎁 GIVEAWAY 🎁 first {n} people to message me on telegram win a {prize}",
        "congratulations you have been selected to win a {prize}, claim at {url}",
        "you won!! dm me to claim your {prize} before it expires",
        "giving away {prize} to my followers, just follow and dm the word WIN",
        "winner announced: claim your {prize} at {url} within 24 hours",
        "free {prize} for the first {n} people, link in bio",
        "spin the wheel and get a {prize} guaranteed {url}",
        "you are our lucky viewer today, message {h} to collect your {prize}",
    ],
    "impersonation": [
        "{ch} official: thanks for watching! you have been chosen for a gift, text me on whatsapp",
        "hi this is {ch}, message me on telegram for a special prize",
        "official account of {ch}: congrats you won, dm me now",
        "this is the brand's support team, your account will be closed unless you verify at {url}",
        "admin here, winners please contact {h} to receive the reward",
        "thanks for commenting, i picked you for my giveaway, contact my manager on whatsapp",
        "{ch} (backup account) dm me to get your prize",
        "customer service: we refund your order, send your card number to {h}",
    ],
    "crypto": [
        "i was broke until i met {name}, she turned my $500 into $8,000 in two weeks, contact her on whatsapp",
        "thanks to {name} i earn {n}k a week trading forex, his telegram is {h}",
        "everyone asking how i got rich, look up {name} on instagram, best mentor ever",
        "{name} is legit!! made {n}x my investment, reach out via {url}",
        "bitcoin doubled in my account, the strategy is at {url}",
        "invest with {name} and thank me later 🚀 {h}",
        "work from home and make ${n}0 a day, ask me how",
        "i quit my job because of this side hustle {url}",
    ],
    "bait": [
        "hot singles in your area {url}",
        "my pics are in my bio 😘 don't tell anyone",
        "bored? text me 💋 {h}",
        "lonely? come chat with me {url}",
        "who wants to see my private page 😏 link in bio",
    ],
    "followers": [
        "buy real followers cheap, 1000 for $5, dm {h}",
        "need more views? we get you 10k views in 24h {url}",
        "grow your account fast with real likes, visit {url}",
        "cheap subscribers and watch hours, message me",
        "want to go viral? i can boost your video, dm me",
    ],
}

SPAM_JA = {
    "self_promo": [
        "私もチャンネルで{thing_ja}の動画を出してます！よかったら見てください",
        "チャンネル登録お願いします🙏あと{n}人で1000人です",
        "新しい動画アップしました！プロフから見てね",
        "{thing_ja}やってます、ぜひ遊びに来てください",
        "宣伝すみません、歌ってみた上げたので聴いてほしいです",
    ],
    "sub4sub": [
        "相互フォローしませんか？フォロバ100%",
        "フォローしてくれたら必ずフォロー返します",
        "相互登録しましょう！コメントください",
        "いいね返しします！気軽にどうぞ",
    ],
    "link_drop": [
        "{url}",
        "詳しくはこちら→{url}",
        "無料で見れるサイトあります {url}",
        "同じ商品が半額で買えます {url}",
        "続きはこちらから {url}",
    ],
    "giveaway": [
        "おめでとうございます🎉{prize_ja}が当選しました！こちらから受け取ってください {url}",
        "プレゼント企画中🎁フォローとDMで{prize_ja}が当たる",
        "抽選で{n}名様に{prize_ja}をプレゼント！プロフのリンクから応募",
        "当選者の方はLINEで連絡してください {url}",
        "{prize_ja}配布中！先着{n}名、今すぐDM",
    ],
    "impersonation": [
        "{ch}公式です。当選したのでLINEを追加してください",
        "こちら{ch}のサブアカウントです、プレゼントの件でDMください",
        "公式サポートです。アカウント確認のためこちらにログインしてください {url}",
        "運営事務局です。賞品発送のため {h} まで連絡ください",
    ],
    "crypto": [
        "{name_ja}さんのおかげで月収{n}0万円になりました！LINEで相談できます",
        "誰でも稼げる副業教えます、興味ある人はプロフへ",
        "株の勉強会で資産が3倍に！詳しくは {url}",
        "仮想通貨で毎日{n}万円の利益、やり方はこちら {url}",
        "在宅で簡単に稼げる方法あります、DMください💰",
    ],
    "followers": [
        "フォロワー1000人500円で増やします、DMへ",
        "再生数を爆上げします！格安で対応 {url}",
        "いいね・フォロワー販売中、即日対応します",
    ],
}

HAM_EN = [
    "this is the best video on {thing} i've seen",
    "the part at {m}:{s:02d} made me laugh so hard",
    "does anyone know the name of the song at the end?",
    "i've been watching since 2019 and you never miss",
    "where did you get that jacket?",
    "can you do a video on {thing} next?",
    "first time here, instantly subscribed",
    "my order arrived today and it's even nicer in person",
    "how long did shipping to canada take for you guys?",
    "the editing on this is so clean",
    "i tried this recipe and my kids loved it",
    "this deserves way more views",
    "who's watching in {year}?",
    "your cat in the background 😂",
    "thank you for the honest review",
    "is the medium size true to size?",
    "the link in the description doesn't work for me, is it just me?",
    "beware of the accounts replying with links, they're fake, the real creator never asks for money",
    "did anyone actually win the giveaway last month? just curious",
    "i followed your channel after the collab with {ch}",
    "please make a part 2",
    "lol the ending",
    "i needed this today, thank you",
    "came here from tiktok",
    "my sub count is tiny but i learned so much from your tips on {thing}",
    "the sound quality is amazing",
    "can't believe it's been {n} years since the first video",
    "respect for replying to every comment",
    "what camera do you use?",
    "i showed this to my mom and she cried",
    "the mug i bought cracked, how do i return it?",
    "when is the next livestream?",
    "that transition was smooth",
    "honestly underrated channel",
    "i don't usually comment but this was great",
    "this guide saved me hours",
    "watching this at 3am again",
    "where can i buy the same bowls?",
    "are you coming to osaka on tour?",
    "the subtitles are a bit off at the start",
    "report the bots in the replies please",
    "i entered the official giveaway on your website, fingers crossed",
    "love the new thumbnail style",
    "who else got the notification instantly",
    "your voice is so calming",
    "the chorus gives me chills every time",
    "great tutorial but you skipped step 3",
    "so proud of how far you've come",
    # customers who paste links and numbers are still customers
    "my order KM-20{n}15 still says in transit, the tracking page {url} hasn't changed in days",
    "where is my order? the courier site {url} says delivered but nothing here",
    "the mug arrived cracked, photos here {url}, can you replace it?",
    "please call me back on 0{n}0-555-01{n} about my return, thanks",
    "i tried calling 0120-555-9{n}9 but nobody answered, is the shop open today?",
    "someone posted {url} in your comments claiming to be you, is that legit?",
    "order KM-3{n}82 - can you send the invoice to my work email instead?",
    "is this your official store {url} or a fake one?",
]

HAM_JA = [
    "この動画めっちゃ好きです",
    "{m}分{s}秒のところで笑いました",
    "最後の曲の名前わかる人いますか？",
    "ずっと見てます、いつも元気もらってます",
    "そのジャケットどこのですか？",
    "次は{thing_ja}の動画お願いします",
    "初めて見ました、登録しました",
    "注文した器が届きました、実物の方がきれい",
    "カナダへの配送はどれくらいかかりましたか？",
    "編集がきれいすぎる",
    "このレシピ作ったら家族に好評でした",
    "もっと再生されるべき",
    "後ろの猫ちゃんかわいい😂",
    "正直なレビューありがとうございます",
    "Mサイズは普通のサイズ感ですか？",
    "概要欄のリンクが開けないんですが私だけ？",
    "返信でリンク貼ってるアカウントは偽物なので気をつけて",
    "先月のプレゼント企画って当選発表ありましたか？",
    "続編お願いします",
    "今日これが必要でした、ありがとう",
    "TikTokから来ました",
    "どのカメラ使ってますか？",
    "母に見せたら泣いてました",
    "買ったマグが割れてたんですが返品できますか？",
    "次のライブ配信はいつですか？",
    "大阪にも来てほしい",
    "声が落ち着く",
    "サビで鳥肌",
    "手順3が飛ばされてる気がする",
    "ここまで成長してて感動",
    "偽アカウントに注意してください、本人はDMしません",
    "公式サイトの企画に応募しました、当たるといいな",
    "注文KM-20{n}15の追跡ページ {url} がずっと更新されません",
    "割れていた器の写真です {url} 交換できますか？",
    "返品の件で 090-555-01{n} に折り返しお願いします",
    "{url} は公式サイトですか？偽物ですか？",
]

THINGS = [
    "gaming",
    "cooking",
    "makeup",
    "guitar covers",
    "fitness",
    "minecraft builds",
    "travel vlogs",
    "anime edits",
    "pottery",
    "study with me",
    "street food",
    "lofi beats",
]
THINGS_JA = ["料理", "ゲーム実況", "メイク", "弾いてみた", "筋トレ", "旅行", "陶芸", "イラスト"]
NAMES = ["Mrs. Sarah Collins", "Mr. David Reyes", "Anna Whitfield", "Coach Brian", "Linda Park"]
NAMES_JA = ["田中先生", "佐藤さん", "鈴木コーチ", "山本さん"]

LEET = str.maketrans({"o": "0", "i": "1", "e": "3", "a": "4", "s": "$"})
TYPOS = {
    "check": "chek",
    "channel": "chanel",
    "subscribe": "subscrib",
    "please": "plz",
    "free": "fr33",
    "you": "u",
    "your": "ur",
    "message": "msg",
    "people": "ppl",
    "watch": "wacth",
    "follow": "folow",
    "really": "rly",
}


def _style_en(text: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.12:
        text = text.upper()
    elif roll < 0.22:
        text = " ".join(TYPOS.get(w, w) for w in text.split())
    elif roll < 0.27:
        text = text.translate(LEET)
    elif roll < 0.32:
        words = text.split()
        i = rng.randrange(len(words))
        words[i] = " ".join(words[i])  # l e t t e r s p a c i n g
        text = " ".join(words)
    elif roll < 0.40:
        text = text.capitalize() + rng.choice(["!!", "!!!", " !!", "...", " ?"])
    elif roll < 0.48:
        text = text.replace(" ", "  ", 1).rstrip(".!?")
    if rng.random() < 0.35:
        text = f"{text} {''.join(rng.sample(EMOJI, rng.randint(1, 3)))}"
    if rng.random() < 0.12:
        text = f"{rng.choice(EMOJI)} {text}"
    if rng.random() < 0.08:
        text = text.replace("o", "oo", 1).replace("e", "ee", 1)
    return text


def _style_ja(text: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.15:
        text = unicodedata.normalize("NFKC", text).translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})  # full width
    elif roll < 0.25:
        text = text.replace("！", "!!").replace("？", "??")
    elif roll < 0.35:
        text = text + rng.choice(["ww", "笑", "！！", "♪", "～"])
    if rng.random() < 0.35:
        text = f"{text}{''.join(rng.sample(EMOJI, rng.randint(1, 2)))}"
    return text


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        ch=rng.choice(CHANNELS),
        h=rng.choice(HANDLES),
        url=rng.choice(DOMAINS + ["https://" + rng.choice(DOMAINS)]),
        prize=rng.choice(PRIZES),
        prize_ja=rng.choice(JA_PRIZES),
        n=rng.randint(2, 99),
        thing=rng.choice(THINGS),
        thing_ja=rng.choice(THINGS_JA),
        name=rng.choice(NAMES),
        name_ja=rng.choice(NAMES_JA),
        m=rng.randint(0, 12),
        s=rng.randint(0, 59),
        year=rng.choice([2024, 2025, 2026]),
    )


def generate() -> list[dict[str, str]]:
    rng = random.Random(SEED)
    rows: list[dict[str, str]] = []
    seen: set[str] = set()

    def add(text: str, label: str, lang: str, kind: str) -> None:
        key = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
        if key not in seen:
            seen.add(key)
            rows.append({"text": text, "label": label, "lang": lang, "kind": kind})

    for kinds, lang, per, style in ((SPAM_EN, "en", 40, _style_en), (SPAM_JA, "ja", 30, _style_ja)):
        for kind, templates in kinds.items():
            for template in templates:
                for _ in range(per if "{" in template else 12):
                    text = _fill(template, rng)
                    if lang == "ja" and "{url}" in template and rng.random() < 0.5:
                        for domain in DOMAINS:
                            text = text.replace(domain, rng.choice(JA_DOMAINS))
                    add(style(text, rng), "spam", lang, kind)
    for templates, lang, per, style in ((HAM_EN, "en", 30, _style_en), (HAM_JA, "ja", 25, _style_ja)):
        for template in templates:
            for _ in range(per):
                add(style(_fill(template, rng), rng), "ham", lang, "ham")
    for row in compose(COMPOSE_SEED):
        add(row["text"], row["label"], row["lang"], row["kind"])
    rng.shuffle(rows)
    return rows


def main() -> None:
    rows = generate()
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
