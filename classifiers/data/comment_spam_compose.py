"""Compositional comment spam / ham (EN and JA) for ``generate_comment_spam.py``.

Every phrase here was written by the replyguard team for this file; nothing comes from a dataset,
website or repository. A comment is put together from independent parts (an opener, the body of its
kind, a call to action, a contact or link, a sign-off), each part drawn from its own list, and then
passed through one of several *voices* (how a person types: all lower case without punctuation,
shouting, random case, text-speak, misspellings, leetspeak, dotted or spaced-out words, emoji-heavy,
hashtags, a polite essay, ...). Ham goes through the same voices as spam, so that a style alone never
says "spam"; ham also carries the hard negatives real comments are full of: "check", "subscribe",
"link", "channel", "follow", "free", "giveaway", "DM" in innocent use.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable

# ----------------------------------------------------------------------------------------------- slots
EN_NAMES = ["Jay", "Kayla", "Marcus", "Destiny", "Tyler", "Priya", "Omar", "Bella", "Dylan", "Ana", "Leo", "Zoe"]
ROLES = [
    "rapper",
    "singer",
    "producer",
    "drummer",
    "guitarist",
    "beatboxer",
    "dancer",
    "gamer",
    "animator",
    "comedian",
    "makeup artist",
    "songwriter",
]
PLACES = ["Texas", "Manila", "Toronto", "Lagos", "London", "Ohio", "Brazil", "Sydney", "Jakarta", "Florida"]
TOPICS = [
    "minecraft",
    "fortnite",
    "piano covers",
    "nail art",
    "skateboarding",
    "baking",
    "reaction videos",
    "roblox",
    "vlogs",
    "comedy skits",
    "drum covers",
    "speed paintings",
    "car reviews",
    "fishing",
    "beat making",
    "k-pop dance covers",
]
PLATFORMS = ["YouTube", "insta", "IG", "TikTok", "twitch", "soundcloud", "spotify", "facebook"]
LINKS = [
    "www.tubeboost-free.example",
    "http://bit.example/xK29q",
    "https://youtu.example/watch?v=q8Lm2",
    "youtube.example/channel/UC_mixtape",
    "https://soundcloud.example/lilverse",
    "www.cheapfollows.example/buy",
    "http://goo.example/ab3Xz",
    "linkr.example/kayla.sings",
    "http://winner-claim.example",
    "www.freegiftcards.example",
    "https://t.example/+cryptoSignals",
    "wa.example/15550142",
    "http://amaz.example/dp/B00X",
    "www.earn-daily.example",
    "http://www.mixtape-drop.example/listen",
    "instagr.example/dance.with.zoe",
    "ｗｗｗ．ｆｒｅｅ－ｇｉｆｔ．ｅｘａｍｐｌｅ",
    "bit . example / 7hQ",
    "freegift dot example",
]
HANDLE_PARTS = ["official", "real", "the", "its", "xo", "tv", "music", "vlogs", "gaming", "beats", "daily", "hq"]
PRIZES = [
    "a PS5",
    "an iPhone 15 Pro",
    "$250 in cash",
    "a signed hoodie",
    "$100 Steam card",
    "concert tickets",
    "a gaming chair",
    "1 ETH",
    "a Galaxy phone",
    "$50 gift card",
    "free merch",
    "a laptop",
]
MONEY = ["$300", "$1,200", "$4,500", "$800", "$15k", "$2,000", "$650", "$9,800"]
SONG_WORDS = ["song", "beat", "chorus", "verse", "bridge", "drop", "melody", "bassline", "hook", "music video"]
EMOJI_SPAM = ["🔥", "👇", "💯", "🎁", "✅", "🙏", "💰", "🚀", "👉", "📲", "💸", "⚡", "🎉", "📈", "🤑"]
EMOJI_ANY = ["😂", "😭", "❤️", "😍", "🔥", "👏", "💀", "🥺", "✨", "🙌", "😮", "🤣", "💕", "🎶", "👀"]

JA_NAMES = ["ゆうき", "みさき", "たくや", "あやね", "りょう", "さくら", "けんた", "まお", "そうた", "ひな"]
JA_TOPICS = ["歌ってみた", "ゲーム実況", "料理", "ダンス", "弾いてみた", "メイク", "Vlog", "釣り", "お絵描き", "筋トレ"]
JA_LINKS = [
    "line.example/ti/p/abc12",
    "https://okane-lab.example",
    "http://tousen-uketori.example",
    "bit.example/3kQe",
    "fukugyo-navi.example",
    "https://present-koushiki.example/entry",
    "ｌｉｎｅ．ｅｘａｍｐｌｅ／ｐ／ｘｙ",
]
JA_PRIZES = ["現金5万円", "iPhone15", "Amazonギフト券3万円分", "PS5", "ブランドバッグ", "推しのサイン色紙", "10万円"]
JA_MONEY = ["月50万", "日給3万", "月収80万", "1日5000円", "半年で300万", "毎月20万"]


def _handle(rng: random.Random) -> str:
    base = rng.choice(EN_NAMES).lower() + rng.choice(["", ".", "_"]) + rng.choice(HANDLE_PARTS)
    return "@" + base + rng.choice(["", "", str(rng.randint(1, 99))])


def _fill(text: str, rng: random.Random) -> str:
    return text.format(
        name=rng.choice(EN_NAMES),
        role=rng.choice(ROLES),
        place=rng.choice(PLACES),
        age=rng.randint(13, 24),
        topic=rng.choice(TOPICS),
        topic2=rng.choice(TOPICS),
        topic3=rng.choice(TOPICS),
        platform=rng.choice(PLATFORMS),
        link=rng.choice(LINKS),
        handle=_handle(rng),
        prize=rng.choice(PRIZES),
        money=rng.choice(MONEY),
        n=rng.choice([50, 100, 200, 500, 1000, 5000, 10000]),
        k=rng.randint(2, 40),
        song=rng.choice(SONG_WORDS),
        jname=rng.choice(JA_NAMES),
        jtopic=rng.choice(JA_TOPICS),
        jlink=rng.choice(JA_LINKS),
        jprize=rng.choice(JA_PRIZES),
        jmoney=rng.choice(JA_MONEY),
        jn=rng.choice([10, 30, 50, 100, 300]),
        artist=rng.choice(ARTISTS),
        year=rng.choice([2012, 2015, 2019, 2023, 2025, 2026]),
    )


# ------------------------------------------------------------------------------------ English spam parts
OPENERS_EN = [
    "",
    "",
    "",
    "hey guys",
    "hi everyone",
    "yo",
    "hello people",
    "sorry for the spam but",
    "i know nobody reads these but",
    "please don't skip this",
    "not trying to be annoying but",
    "ok so",
    "attention everyone",
    "hey music lovers",
    "to whoever is reading this",
    "real quick",
    "before you scroll",
    "hiii",
    "wassup",
    "good evening fam",
    "i hate asking but",
    "one second of your time",
]
SELF_INTROS_EN = [
    "i'm a {age} year old {role} from {place}",
    "i just started a channel about {topic}",
    "i make {topic} videos",
    "small youtuber here",
    "my little brother just uploaded his first {topic} video",
    "i'm an upcoming {role}",
    "me and my friends have a band",
    "i do {topic} on my page",
    "i'm a new {role} trying to make it",
    "i post {topic} every day",
    "i'm a struggling artist",
    "i've been working on my music for years",
    "i just dropped a new mixtape",
    "i uploaded a remix of this {song}",
    "i did a cover of this",
    "my sister makes {topic} content",
    "i run a tiny {topic} channel",
    "we are two best friends making {topic} videos",
]
PROMO_ASKS_EN = [
    "check out my channel",
    "please check my channel out",
    "go check out my page",
    "subscribe to me",
    "sub to my channel",
    "pls subscribe",
    "give my latest video a look",
    "take a look at my videos",
    "go listen to my new track",
    "follow me on {platform}",
    "hit that follow button on my profile",
    "click on my name and watch my stuff",
    "tap my profile pic",
    "visit my page",
    "watch my cover",
    "check my uploads",
    "peep my channel",
    "come see my content",
    "listen to my song on {platform}",
    "go to my channel and hit subscribe",
    "give me a follow",
    "search {name} {role} on {platform}",
]
SWEETENERS_EN = [
    "",
    "",
    "i'll sub back",
    "every sub counts",
    "trying to reach {n} subs",
    "thank you and god bless",
    "zero regrets guaranteed",
    "if you don't like it that's ok",
    "thumbs up this comment so others see it",
    "like this so it gets to the top",
    "it would mean the world to me",
    "i promise it's good",
    "i reply to everyone",
    "only {k} more till {n}",
    "help a dream come true",
    "thanks in advance",
    "love you all",
    "feedback appreciated",
    "no hate please",
    "you might like it",
]
SUB4SUB_EN = [
    "sub4sub",
    "sub 4 sub",
    "s4s anyone",
    "f4f",
    "follow4follow",
    "l4l",
    "like for like",
    "follow for follow",
    "followback",
    "i follow back everyone",
    "sub me and i'll sub you",
    "subscribe to me and i will subscribe to you",
    "comment done when you've subbed",
    "sub to me i sub back in 5 min",
    "who wants to sub for sub",
    "let's help each other grow",
    "support each other, sub for sub",
    "follow me, 100% guaranteed followback",
    "reply if you want a sub back",
    "drop your channel i'll sub",
]
LINK_HOOKS_EN = [
    "{link}",
    "{link} {link}",
    "go here {link}",
    "check this {link}",
    "look {link}",
    "this is crazy {link}",
    "new video {link}",
    "free download {link}",
    "full song mp3 {link}",
    "leaked version {link}",
    "watch before it gets deleted {link}",
    "you have to see this {link}",
    "best site ever {link}",
    "{link} <-- click",
    "click here {link}",
    "lol {link}",
    "my new video {link}",
    "cheap ray bans {link}",
    "earn money from home {link}",
    "win free stuff {link}",
    "the real reason is here {link}",
    "get free gems {link}",
    "visit {link} now",
    "copy and paste this into your browser {link}",
]
GIVEAWAY_EN = [
    "congrats you've been picked to win {prize}",
    "you are among the lucky winners, {prize} is waiting for you",
    "giveaway alert: {prize} to the first {k} people who message me",
    "i'm giving away {prize} to my followers",
    "win {prize} just by following and sharing",
    "claim your {prize} now",
    "free {prize} to everyone who subscribes in the next hour",
    "you have been selected for our monthly reward of {prize}",
    "we are picking {k} winners for {prize} today",
    "you won our surprise draw, prize: {prize}",
    "last chance to get {prize} for free",
]
CONTACTS_EN = [
    "dm me",
    "text me on whatsapp",
    "message me on telegram",
    "telegram {handle}",
    "contact {handle}",
    "whatsapp +1 555 01{k:02d}",
    "reach out to {handle} on insta",
    "send a message to my manager {handle}",
    "link in my bio",
    "tap the link in my profile",
    "go to {link}",
    "claim at {link}",
    "details at {link}",
    "write 'WIN' to {handle}",
    "check your inbox",
    "reply with your email",
]
IMPERSONATION_EN = [
    "this is the official account",
    "official {name} team here",
    "hi it's me, this is my backup account",
    "this is my second account, my main got hacked",
    "admin here",
    "management team here",
    "thank you for watching, this is {name}",
    "verified ✔ account of the creator",
    "from the channel owner",
    "i'm the real one, the other accounts are fake",
    "official support here",
    "hello from the page admin",
]
IMPERSONATION_TAILS_EN = [
    "you have been chosen as a winner",
    "i picked your comment for a special gift",
    "congrats on being selected",
    "your account was flagged, verify it now",
    "i have a surprise for you",
    "you are eligible for a reward",
    "i want to send you something",
    "thanks for the support, i have a gift for you",
    "your comment won our contest",
]
MONEY_EN = [
    "i made {money} this week working from home",
    "i was broke until i found {name}, now i make {money} a month",
    "{name} turned my {money} into ten times that",
    "thanks to mr {name} i paid off my debts",
    "my investment manager {name} is legit",
    "bitcoin signals that actually work",
    "forex trading changed my life",
    "passive income is real, i earn {money} a week",
    "stop wasting time here and start earning",
    "i quit my 9 to 5, ask me how",
    "crypto is the future and {name} is the best mentor",
    "binary options made me {money} in {k} days",
    "get paid {money} for watching videos",
    "easy money method, no experience needed",
]
PRODUCTS_EN = [
    "cheap {prize} deals",
    "buy real youtube views",
    "buy followers, likes and views",
    "best weight loss tea",
    "essay writing service, fast and cheap",
    "phone cases 80% off",
    "replica sneakers for sale",
    "cheap game accounts",
    "free robux generator",
    "free v-bucks no human verification",
    "skin care that actually works",
    "custom logos for $5",
    "grow your channel fast, real subs",
    "get 10k views overnight",
]
HOBBY_ASK_EN = [
    "do you like {topic}, {topic2} or {topic3}? then you'll love my channel",
    "if you're into {topic} and {topic2} my channel is for you",
    "love {topic}? i upload {topic} and {topic2} every week, come say hi",
    "into {topic}? i got you, my page is all {topic}",
]
SHARE_EN = [
    "check out this video on youtube",
    "check out this video on youtube: {link}",
    "check out this playlist on youtube",
    "look at this video i made",
    "watch this video about {topic}",
    "this video changed my life {link}",
    "see my new video about {topic}",
    "watch my latest upload",
]
SOCIAL_ASK_EN = [
    "follow me on twitter {handle}",
    "add me on snapchat {handle}",
    "follow my insta {handle}",
    "my tiktok is {handle}, follow",
    "add me on facebook",
    "go like my facebook page",
    "follow my twitch, i stream every night",
    "my soundcloud is in my bio",
]
BUSINESS_EN = [
    "your page qualifies for a paid partnership, message our team",
    "collab? send us a dm",
    "we are looking for brand ambassadors, dm us to apply",
    "i sent you a private message, reply asap",
    "dear, check your inbox please",
    "your content is great, let's work together, message us",
    "tag {handle} in your next post to get reposted",
    "promote your page on {handle}",
    "we're hiring remote workers, {money} a week, reply with your email",
    "lost money to a scam? {name} helped me recover everything, contact {handle}",
    "hello dear, you look kind, can we be friends",
    "send me a friend request, i'd like to know you",
    "pinned by the creator: you are selected, contact me",
    "going live now with a giveaway, join my live",
]
BAIT_EN = [
    "bored and lonely, talk to me",
    "cute girls near you want to chat",
    "my private pics are on my page",
    "add me if you want to talk",
    "single and looking, message me",
]


def _join(parts: list[str], rng: random.Random) -> str:
    parts = [p for p in parts if p]
    sep = rng.choice([" ", ", ", ". ", "! ", " - ", "... ", " "])
    return sep.join(parts)


def spam_en(kind: str, rng: random.Random) -> str:
    c = rng.choice
    if kind == "self_promo":
        parts = [c(OPENERS_EN), c(SELF_INTROS_EN), c(PROMO_ASKS_EN), c(SWEETENERS_EN)]
        if rng.random() < 0.2:
            parts.insert(1, c(["love this {song}", "great video", "nice", "awesome song", "this is fire", "cool"]))
        if rng.random() < 0.2:
            parts.append(c(["{link}", "{handle}", "link in bio"]))
        return _join(parts, rng)
    if kind == "promo_short":
        return _join([c(PROMO_ASKS_EN), c(PROMO_ASKS_EN + SWEETENERS_EN)], rng)
    if kind == "sub4sub":
        parts = [c(OPENERS_EN), c(SUB4SUB_EN), c(SUB4SUB_EN + SWEETENERS_EN)]
        return _join(parts, rng)
    if kind == "link_drop":
        parts = [c(["", "", "", "nice video", "great song", "hey", "omg"]), c(LINK_HOOKS_EN)]
        return _join(parts, rng)
    if kind == "giveaway":
        return _join([c(OPENERS_EN[:6]), c(GIVEAWAY_EN), c(CONTACTS_EN)], rng)
    if kind == "impersonation":
        return _join([c(IMPERSONATION_EN), c(IMPERSONATION_TAILS_EN), c(CONTACTS_EN)], rng)
    if kind == "money":
        return _join([c(OPENERS_EN), c(MONEY_EN), c(CONTACTS_EN + [""])], rng)
    if kind == "product":
        return _join([c(PRODUCTS_EN), c(CONTACTS_EN + ["{link}", "{link}", "order now"])], rng)
    if kind == "bait":
        return _join([c(BAIT_EN), c(CONTACTS_EN[:8] + ["{link}"])], rng)
    if kind == "hobby_ask":
        return _join([c(OPENERS_EN), c(HOBBY_ASK_EN), c(SWEETENERS_EN)], rng)
    if kind == "share":
        return _join([c(["", "", "lol", "hey", "wow", "great song", "guys"]), c(SHARE_EN), c(SWEETENERS_EN[:8])], rng)
    if kind == "social_ask":
        return _join([c(OPENERS_EN), c(SOCIAL_ASK_EN), c(SWEETENERS_EN)], rng)
    if kind == "business":
        return _join([c(["", "", "", "great shot", "wow", "lovely feed", "hi"]), c(BUSINESS_EN)], rng)
    raise ValueError(kind)


EN_SPAM_KINDS = {
    "self_promo": 520,
    "promo_short": 160,
    "sub4sub": 260,
    "link_drop": 300,
    "giveaway": 200,
    "impersonation": 220,
    "money": 220,
    "product": 150,
    "bait": 60,
    "hobby_ask": 150,
    "share": 160,
    "social_ask": 150,
    "business": 260,
}

# ------------------------------------------------------------------------------------- English ham parts
SUBJECTS_EN = [
    "this {song}",
    "her voice",
    "his flow",
    "the dancing",
    "the video",
    "this channel",
    "the ending",
    "the drummer",
    "the outfit at the end",
    "the lighting",
    "that high note",
    "this collab",
    "the animation",
    "the lyrics",
    "this remix",
    "the kid in the background",
]
REACTIONS_EN = [
    "is amazing",
    "never gets old",
    "gives me chills",
    "is so underrated",
    "is stuck in my head",
    "is pure art",
    "made my day",
    "is a masterpiece",
    "hits different at night",
    "is way too good",
    "slaps",
    "is everything",
    "brings back memories",
    "is iconic",
    "is overrated honestly",
    "is kinda mid",
    "got me crying",
    "is so wholesome",
]
STANDALONE_HAM_EN = [
    "who's still listening in {year}",
    "{k} years later and still a banger",
    "i remember when this came out",
    "my mom used to play this in the car",
    "the views went crazy",
    "over a billion views, well deserved",
    "this was my childhood",
    "i can't stop replaying this",
    "on repeat all day",
    "first",
    "so early the views are still low",
    "the best song of all time",
    "pure nostalgia",
    "this got me through high school",
    "played this at my wedding",
    "my cat loves this song",
    "anyone here from the movie",
    "came back after {k} years",
    "i learned this dance in school",
    "who else is here because of tiktok",
    "the quality in {year} hits different",
    "she looks so happy here",
    "he really said that lol",
    "that face at 2:{k:02d}",
    "2:{k:02d} is the best part",
    "0:{k:02d} goosebumps",
    "i'm not crying you are",
    "why is this so catchy",
    "lmao the ending",
    "wait what just happened",
    "this deserves a grammy",
    "all my homies love this",
    "i used to hate this song now i love it",
    "this is a vibe",
    "so relaxing",
    "best music video ever made",
    "a true legend",
    "can't believe this is free to watch",
    "i wish i could go back to {year}",
    "rip headphone users at the end",
]
QUESTIONS_EN = [
    "what's the name of the {song} at the end?",
    "does anyone know where this was filmed?",
    "which camera is this shot on?",
    "how do you edit like this?",
    "is there a full version?",
    "when is the new album coming out?",
    "what's the dance called?",
    "who is the girl in the red dress?",
    "can someone explain the ending?",
    "is this on spotify?",
    "what brand is that guitar?",
    "is the tour coming to {place}?",
    "how old was she here?",
    "where did you buy that hoodie?",
    "does this come in a bigger size?",
    "what language is this?",
    "are the lyrics anywhere?",
    "how long did this take to make?",
    "which episode is this from?",
    "what app do you use for the captions?",
]
OPINIONS_EN = [
    "the original version was better",
    "i prefer the acoustic one",
    "not my type of music but respect",
    "the remix is better, fight me",
    "i think the old style suited them more",
    "people in the comments are too harsh",
    "this is what real talent looks like",
    "the label should promote this more",
    "i don't get the hype",
    "this needed to be longer",
    "too many ads on this video",
    "the autotune is a bit much",
    "the part with the dog was unnecessary",
]
ARTISTS = ["she", "he", "this guy", "this girl", "the singer", "the band", "the lead singer", "mom", "the rapper"]
ARTIST_HAM_EN = [
    "{artist} is a queen",
    "{artist} never disappoints",
    "{artist} looks so young here",
    "{artist} deserves every award",
    "{artist} sounds even better live",
    "{artist} was born for this",
    "i would die for {artist}",
    "greetings from {place}",
    "{place} loves you",
    "love from {place} ❤️",
    "who's here in {year}",
    "{n}k views in a day, insane",
    "almost {k} billion views wow",
    "why is the view count so low on this",
    "this has more views than people on earth lol",
    "the view count keeps going up",
    "stop hating on {artist}, they worked hard",
    "this song is trash and i still know every word",
    "i hate how catchy this is",
    "my {year} playlist wouldn't be complete without this",
    "best summer song",
    "this was playing at every party",
]
# hard negatives: spammy words in innocent use
HARD_HAM_EN = [
    "i had to check if this was real",
    "check the description for the chords",
    "you should check the comments, they're hilarious",
    "i checked and the album is out on friday",
    "just subscribed, your tutorials are so clear",
    "subscribed after the first video",
    "finally hit the subscribe button after years of watching",
    "how do you have only {k}k subscribers, you deserve millions",
    "congrats on {n}k subs!!",
    "the link in the description is broken",
    "can you put the link to the recipe in the description?",
    "is there a link to the full interview?",
    "the store link doesn't work on my phone",
    "what channel is this originally from?",
    "this channel is the only reason i still use youtube",
    "your channel helped me pass my exam",
    "this channel never disappoints",
    "i follow you on insta too, love your posts",
    "followed you on tiktok after this",
    "just followed, can't wait for more",
    "did anyone win the giveaway last week?",
    "is this giveaway legit or is it a scam?",
    "i entered the giveaway on the official page, good luck everyone",
    "these giveaway scam replies are getting out of hand",
    "don't click the links in the replies, they're scams",
    "report the fake accounts pretending to be her",
    "the real account never asks you to dm anyone",
    "beware of the telegram bots in the comments",
    "whatsapp numbers in the comments are always scams",
    "crypto bros in the comments again lol",
    "all these bitcoin replies are bots",
    "free concert in the park was amazing",
    "the free version of the app works fine",
    "free shipping on orders over $50? that's nice",
    "i won tickets from the radio to see them live",
    "we won the match after listening to this",
    "if anyone wants the sheet music i transcribed, it is free, just ask",
    "my friend sent me the link and now i'm obsessed",
    "my sister told me to check out your videos and she was right",
    "my teacher showed us this channel in class",
    "i shared this with my whole family group chat",
    "who else came here from the link on twitter",
    "please make a follow-up video",
    "follow-up question: is the blue one waterproof?",
    "money can't buy this kind of talent",
    "i'd pay money to see this live",
    "saving money for the concert tickets",
    "this is the official video right?",
    "the official lyrics video is better",
    "subscribe to her channel is what i keep telling my friends",
    "turn on subtitles, they're great",
    "like if you came here from the trailer",
    "the comments on this video are so wholesome",
    "promo codes never work for me lol",
    "just checked out of the hotel and this was playing in the lobby",
    "checked out the book from the library after this video",
    "i lost {k} pounds doing this workout, thank you",
    "look out for the cameo at the end",
    "call me crazy but the slow version is better",
    "text me when this gets a sequel is what i told my brother",
    "great deal, i got mine on sale last week",
    "my friend messaged me this video and i haven't stopped laughing",
    "i'll message the shop about the sizes, thanks",
    "the prize for best video goes to this one",
    "is the discount code still valid?",
]
CUSTOMER_HAM_EN = [
    "my order hasn't arrived yet, can you check?",
    "where do i find my tracking number?",
    "is the black one back in stock?",
    "do you ship to {place}?",
    "bought this last month, still love it",
    "the quality is better than i expected",
    "the package came damaged, who do i contact?",
    "how long does shipping usually take?",
    "can i change my delivery address?",
    "my order number is KM-{k}{k}{k}1, it says pending",
    "is there a physical store?",
    "does this work with the older model?",
]


def ham_en(kind: str, rng: random.Random) -> str:
    c = rng.choice
    if kind == "reaction":
        text = f"{c(SUBJECTS_EN)} {c(REACTIONS_EN)}"
        if rng.random() < 0.3:
            text = _join([text, c(STANDALONE_HAM_EN + OPINIONS_EN)], rng)
        return text
    if kind == "standalone":
        return c(STANDALONE_HAM_EN)
    if kind == "question":
        return _join([c(["", "", "", "hey", "quick question", "love this", "great video"]), c(QUESTIONS_EN)], rng)
    if kind == "opinion":
        return _join([c(OPINIONS_EN), c(["", "", "just saying", "imo", "no offense", "but still good"])], rng)
    if kind == "hard":
        return _join([c(["", "", "", "lol", "honestly", "ngl", "btw", "love this"]), c(HARD_HAM_EN)], rng)
    if kind == "customer":
        return _join([c(["", "", "hi", "hello", "hey team"]), c(CUSTOMER_HAM_EN)], rng)
    if kind == "artist":
        return _join([c(ARTIST_HAM_EN), c(["", "", "", c(EMOJI_ANY), "lol", "honestly"])], rng)
    if kind == "mention":
        return _join(
            [_handle(rng), c(["look at this", "this is us", "omg", "remember this?", "you need to hear this"])], rng
        )
    raise ValueError(kind)


EN_HAM_KINDS = {
    "reaction": 800,
    "standalone": 380,
    "question": 460,
    "opinion": 240,
    "hard": 950,
    "customer": 200,
    "mention": 180,
    "artist": 450,
}

# ---------------------------------------------------------------------------------------- Japanese spam
JA_OPENERS = [
    "",
    "",
    "",
    "突然すみません",
    "宣伝失礼します",
    "失礼します",
    "こんにちは！",
    "はじめまして",
    "【拡散希望】",
    "【お知らせ】",
    "見てくれた人へ",
    "ちょっとだけ聞いて",
    "スルーしないで🙏",
]
JA_PROMO = [
    "{jtopic}の動画を毎日投稿してます",
    "チャンネル登録お願いします",
    "チャンネル登録よろしくお願いします！",
    "登録者{jn}人目指してます",
    "私の{jtopic}も見てください",
    "新作上げたのでぜひ見に来てください",
    "プロフィールから飛べます",
    "アイコンタップで見れます",
    "高評価と登録してくれたら泣いて喜びます",
    "{jtopic}やってる高校生です、応援してください",
    "TikTokもやってるのでフォローお願いします",
    "オリジナル曲出しました、聴いてください",
    "インスタも見てね",
]
JA_MUTUAL = [
    "相互フォローしませんか",
    "相互さん募集中",
    "フォロバ100%",
    "フォローしてくれたら絶対返します",
    "相互登録お願いします",
    "登録してくれた人全員登録し返します",
    "いいね返し必ずします",
    "無言フォロー失礼します、フォロバお願いします",
    "相互希望の方はコメントください",
]
JA_MONEY_BODY = [
    "スマホだけで{jmoney}稼げる副業あります",
    "誰でも簡単に{jmoney}",
    "主婦でも{jmoney}達成しました",
    "在宅ワークで{jmoney}、知りたい人いますか",
    "{jname}さんの投資講座で人生変わりました",
    "仮想通貨で資産が5倍になりました",
    "FXで{jmoney}、やり方教えます",
    "会社辞めて{jmoney}の生活してます",
    "元手ゼロで始められるお仕事です",
    "寝てる間にお金が増える方法",
]
JA_CONTACT = [
    "LINE追加してね",
    "LINEで詳細送ります",
    "公式LINE追加で無料プレゼント",
    "気になる人はDMへ",
    "詳しくはプロフへ",
    "プロフのURLから",
    "こちらから→{jlink}",
    "{jlink}",
    "今すぐ登録→{jlink}",
    "ID:{jname}{jn}まで",
    "DMください",
    "インスタのDMに連絡ください",
]
JA_GIVEAWAY = [
    "おめでとうございます！{jprize}に当選しました",
    "プレゼント企画開催中！{jprize}を{jn}名様に",
    "フォロー＆RTで{jprize}が当たる",
    "抽選で{jprize}プレゼント🎁",
    "当選者様へ、{jprize}のお受け取り手続きをお願いします",
    "コメントしてくれた方の中から{jprize}をお届けします",
    "期間限定で{jprize}配布中",
]
JA_IMPERSONATE = [
    "{jname}本人です",
    "こちら{jname}のサブアカウントです",
    "公式アカウントです",
    "運営です",
    "{jname}の公式スタッフです",
    "メインアカウントが凍結されたのでこちらで連絡します",
    "いつも応援ありがとう、{jname}です",
    "事務局です",
]
JA_IMPERSONATE_TAIL = [
    "当選したのでLINEを追加してください",
    "プレゼントがあるのでDMください",
    "お礼を送りたいので連絡ください",
    "アカウント確認のためログインしてください {jlink}",
    "特別なファン限定グループに招待します",
    "賞品発送のため住所を教えてください",
]
JA_PRODUCT = [
    "フォロワー{jn}00人{jn}0円から",
    "再生回数増やします、格安",
    "ブランド品が90%オフ",
    "痩せるサプリ、飲むだけで-10kg",
    "人気ゲームのアカウント販売中",
    "高評価・登録者、即日納品",
]
JA_BAIT = [
    "寂しいので誰か話しませんか",
    "近くの人と出会えるアプリ",
    "裏垢はプロフにあります",
    "暇な人LINEしよ",
]


def spam_ja(kind: str, rng: random.Random) -> str:
    c = rng.choice
    sep = c(["", "！", "。", " ", "✨", "🙏", "\u3000", "♪"])
    if kind == "self_promo":
        parts = [c(JA_OPENERS), c(JA_PROMO), c(JA_PROMO + [""])]
        if rng.random() < 0.25:
            parts.insert(1, c(["いい曲ですね", "素敵な動画", "最高でした", "共感しかない"]))
    elif kind == "sub4sub":
        parts = [c(JA_OPENERS), c(JA_MUTUAL), c(JA_MUTUAL + [""])]
    elif kind == "money":
        parts = [c(JA_OPENERS), c(JA_MONEY_BODY), c(JA_CONTACT)]
    elif kind == "giveaway":
        parts = [c(JA_GIVEAWAY), c(JA_CONTACT)]
    elif kind == "impersonation":
        parts = [c(JA_IMPERSONATE), c(JA_IMPERSONATE_TAIL)]
    elif kind == "product":
        parts = [c(JA_PRODUCT), c(JA_CONTACT)]
    elif kind == "bait":
        parts = [c(JA_BAIT), c(JA_CONTACT[:6])]
    elif kind == "link_drop":
        parts = [c(["", "これ見て", "やばい", "無料で見れる", "続きはこちら", "全部見れる"]), "{jlink}"]
    else:
        raise ValueError(kind)
    return sep.join(p for p in parts if p)


JA_SPAM_KINDS = {
    "self_promo": 260,
    "sub4sub": 150,
    "money": 220,
    "giveaway": 160,
    "impersonation": 160,
    "product": 90,
    "bait": 40,
    "link_drop": 80,
}

# ----------------------------------------------------------------------------------------- Japanese ham
JA_SUBJECTS = ["この曲", "この動画", "サビ", "声", "ダンス", "最後のところ", "歌詞", "MV", "編集", "この回"]
JA_REACTIONS = [
    "最高すぎる",
    "何回聴いても飽きない",
    "鳥肌たった",
    "神すぎる",
    "エモい",
    "泣ける",
    "好きすぎる",
    "中毒性ある",
    "癒される",
    "天才か",
    "懐かしい",
    "ずっと頭から離れない",
    "ちょっと微妙かも",
]
JA_STANDALONE = [
    "毎日聴いてます",
    "何年経っても色褪せない",
    "中学生の頃を思い出す",
    "{jn}回は見た",
    "ここ好き",
    "2:{jn}のとこ好き",
    "誰か一緒に語ろう",
    "この頃の雰囲気好きだったな",
    "通知きて即来た",
    "初見です、好きになりました",
    "深夜に聴くと沁みる",
    "朝から元気出た",
    "草",
    "わかるww",
    "この人天才だと思う",
    "ライブで聴きたい",
    "この時代のMVってなんか良いよね",
    "歌い出しでもう好き",
    "イヤホン推奨",
    "今年一番聴いた曲",
    "カラオケで歌いたいけど難しすぎる",
    "子どもが踊りだした",
    "作業用にずっと流してる",
    "このコメント欄優しい人多い",
    "犬の反応かわいすぎ",
    "まさかのオチで吹いた",
    "解説わかりやすかったです",
    "レシピ通りに作ったら大成功でした",
    "次の動画も楽しみにしてます",
    "声が優しくて眠れる",
    "途中の字幕おもしろすぎ",
    "久しぶりに見に来た",
]
JA_QUESTIONS = [
    "この曲の名前わかる人いますか？",
    "撮影場所どこですか？",
    "このカメラ何ですか？",
    "フルバージョンありますか？",
    "この服どこで買えますか？",
    "次のライブいつですか？",
    "歌詞どこかに載ってますか？",
    "海外発送してますか？",
    "このお皿まだ売ってますか？",
    "サイズ感どうですか？",
]
JA_HARD = [
    "チャンネル登録しました！これからも楽しみにしてます",
    "登録者{jn}万人おめでとうございます",
    "このチャンネルのおかげで料理が好きになりました",
    "概要欄のリンク切れてます",
    "公式サイトのリンクが開けません",
    "LINEスタンプ出してほしい",
    "友達からLINEでこの動画送られてきた",
    "プレゼント企画当たった人いますか？本物か気になる",
    "プレゼント企画のなりすましに気をつけてください",
    "本人はDMで当選連絡しないらしいので注意",
    "副業の怪しいコメント多すぎて笑う",
    "返信欄の投資の話は全部詐欺なので無視しましょう",
    "フォローしました、投稿楽しみにしてます",
    "インスタもフォローしてます",
    "お金払ってでも見たいレベル",
    "無料でこのクオリティはすごい",
    "無料配送ありがたいです",
    "公式のMVの方が画質いい",
    "宣伝じゃないけどこの人の他の動画もおすすめ",
    "チェックしたら明日発売でした",
    "当選しました！届くの楽しみです",
    "公式LINE登録したらクーポン来ました、ありがとうございます",
    "チャンネル登録者がもっと増えますように",
    "高評価押しました",
    "リンク先の公式ストアで買えました",
    "稼げるとか言ってるコメント、通報しておきました",
    "プロフのリンクから予約できました",
    "DMで質問しても大丈夫ですか？",
    "フォロワーさんの投稿から来ました",
    "無料体験あるのうれしい",
    "フォロー外から失礼します、めちゃくちゃ好きです",
]


def ham_ja(kind: str, rng: random.Random) -> str:
    c = rng.choice
    if kind == "reaction":
        text = c(JA_SUBJECTS) + c(["", "が", "、", "は"]) + c(JA_REACTIONS)
        if rng.random() < 0.3:
            text += c(["", "。", "！", " "]) + c(JA_STANDALONE)
        return text
    if kind == "standalone":
        return c(JA_STANDALONE)
    if kind == "question":
        return c(["", "", "すみません、", "質問です。", "いつも見てます。"]) + c(JA_QUESTIONS)
    if kind == "hard":
        return c(["", "", "", "ちなみに", "いつも見てます。"]) + c(JA_HARD)
    raise ValueError(kind)


JA_HAM_KINDS = {"reaction": 480, "standalone": 320, "question": 260, "hard": 520}

# ------------------------------------------------------------------------------------------------ voices
TEXTSPEAK = {
    "you": "u",
    "your": "ur",
    "you're": "ur",
    "please": "pls",
    "are": "r",
    "to": "2",
    "for": "4",
    "because": "bc",
    "really": "rly",
    "people": "ppl",
    "thanks": "thx",
    "right now": "rn",
    "with": "w/",
    "though": "tho",
}
MISSPELL = {
    "check": ["chek", "chck", "cheak"],
    "channel": ["chanel", "chanell", "channle"],
    "subscribe": ["subcribe", "suscribe", "subscrib", "sub scribe"],
    "please": ["plz", "pleaseee", "plzz", "pleas"],
    "follow": ["folow", "follw", "f0llow"],
    "video": ["vid", "vidoe", "viedo"],
    "music": ["musik", "muzic"],
    "really": ["realy", "rlly"],
    "amazing": ["amazin", "amazinggg"],
    "awesome": ["awsome", "awesum"],
    "beautiful": ["beautifull", "butiful"],
    "message": ["mesage", "msg"],
    "giveaway": ["give away", "giveway"],
    "whatsapp": ["whats app", "watsapp", "wa"],
    "telegram": ["telegrm", "tele"],
    "thank": ["tank", "thnk"],
    "guys": ["guyz", "gys"],
}
LEET = str.maketrans({"o": "0", "i": "1", "e": "3", "a": "@", "s": "5", "t": "7"})


def _words(text: str, fn: Callable[[str], str]) -> str:
    return " ".join(fn(w) for w in text.split(" "))


def v_plain(t: str, rng: random.Random) -> str:
    return t


def v_lower_nopunct(t: str, rng: random.Random) -> str:
    return "".join(ch for ch in t.lower() if ch not in ",.!?'")


def v_sentence(t: str, rng: random.Random) -> str:
    t = t[:1].upper() + t[1:]
    return t if t[-1:] in "!?." else t + rng.choice([".", "!", "!!", " :)", "."])


def v_shout(t: str, rng: random.Random) -> str:
    return t.upper() + rng.choice(["", "!!!", "!!", " !!!!"])


def v_title(t: str, rng: random.Random) -> str:
    return _words(t, lambda w: w[:1].upper() + w[1:])


def v_randcase(t: str, rng: random.Random) -> str:
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in t)


def v_textspeak(t: str, rng: random.Random) -> str:
    for full, short in TEXTSPEAK.items():
        t = t.replace(f" {full} ", f" {short} ")
        if t.startswith(full + " "):
            t = short + t[len(full) :]
    return t


def v_misspell(t: str, rng: random.Random) -> str:
    def one(w: str) -> str:
        key = w.lower().strip(",.!?")
        if key in MISSPELL and rng.random() < 0.8:
            return rng.choice(MISSPELL[key])
        if len(w) > 4 and w.isalpha() and rng.random() < 0.12:
            i = rng.randrange(1, len(w) - 1)
            return w[:i] + w[i + 1 :] if rng.random() < 0.5 else w[:i] + w[i] + w[i:]
        return w

    return _words(t, one)


def v_leet(t: str, rng: random.Random) -> str:
    return _words(t, lambda w: w.translate(LEET) if rng.random() < 0.5 else w)


def v_spaced(t: str, rng: random.Random) -> str:
    words = t.split(" ")
    long = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    for i in rng.sample(long, min(len(long), rng.randint(1, 2))):
        words[i] = rng.choice([" ", ".", "-", "*"]).join(words[i])
    return " ".join(words)


def v_emoji(t: str, rng: random.Random) -> str:
    pool = EMOJI_ANY + EMOJI_SPAM[: rng.choice([0, 5, 15])]
    words = t.split(" ")
    for _ in range(rng.randint(1, 3)):
        words.insert(rng.randint(0, len(words)), rng.choice(pool) * rng.randint(1, 3))
    return " ".join(words)


def v_stretch(t: str, rng: random.Random) -> str:
    words = t.split(" ")
    i = rng.randrange(len(words))
    if words[i]:
        words[i] = words[i] + words[i][-1] * rng.randint(2, 5)
    return " ".join(words) + rng.choice(["", "!!!", "??", "~"])


def v_hashtags(t: str, rng: random.Random) -> str:
    tags = rng.sample(["fyp", "viral", "music", "foryou", "trending", "love", "fun", "explore", "reels", "shorts"], 2)
    return t + " " + " ".join("#" + x for x in tags)


def v_nospace_punct(t: str, rng: random.Random) -> str:
    return t.replace(", ", ",").replace(". ", ".").replace("! ", "!")


def v_essay(t: str, rng: random.Random) -> str:
    lead = rng.choice(
        [
            "Hello everyone, I hope you are all having a wonderful day.",
            "I really hope this comment finds you well.",
            "Honestly I have been thinking about this for a while.",
            "I don't usually write long comments but here goes.",
        ]
    )
    return f"{lead} {v_sentence(t, rng)}"


EN_VOICES: list[tuple[Callable[[str, random.Random], str], float]] = [
    (v_plain, 3),
    (v_lower_nopunct, 3),
    (v_sentence, 3),
    (v_shout, 1.2),
    (v_title, 0.8),
    (v_randcase, 0.4),
    (v_textspeak, 1.5),
    (v_misspell, 2),
    (v_leet, 0.5),
    (v_spaced, 0.5),
    (v_emoji, 2),
    (v_stretch, 0.8),
    (v_hashtags, 0.6),
    (v_nospace_punct, 0.5),
    (v_essay, 0.5),
]


def ja_fullwidth(t: str, rng: random.Random) -> str:
    return unicodedata.normalize("NFKC", t).translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})


def ja_halfkana(t: str, rng: random.Random) -> str:
    table = {"ライン": "ﾗｲﾝ", "プロフ": "ﾌﾟﾛﾌ", "フォロー": "ﾌｫﾛｰ", "チャンネル": "ﾁｬﾝﾈﾙ", "プレゼント": "ﾌﾟﾚｾﾞﾝﾄ"}
    for a, b in table.items():
        t = t.replace(a, b)
    return t


def ja_line_variants(t: str, rng: random.Random) -> str:
    return t.replace("LINE", rng.choice(["ライン", "L I N E", "ﾗｲﾝ", "Ｌ!ＮＥ", "らいん", "L1NE"]))


def ja_brackets(t: str, rng: random.Random) -> str:
    a, b = rng.choice([("【", "】"), ("★", "★"), ("✨", "✨"), ("◆", "◆"), ("＼", "／")])
    return f"{a}{t[:12]}{b}{t[12:]}"


def ja_kusa(t: str, rng: random.Random) -> str:
    return t + rng.choice(["www", "笑", "（笑）", "ｗｗ", "！！", "♡", "〜", "…"])


def ja_emoji(t: str, rng: random.Random) -> str:
    return t + "".join(rng.sample(EMOJI_ANY + EMOJI_SPAM, rng.randint(1, 3)))


def ja_spaces(t: str, rng: random.Random) -> str:
    return " ".join(t) if len(t) < 18 else t.replace("、", " ").replace("。", " ")


JA_VOICES: list[tuple[Callable[[str, random.Random], str], float]] = [
    (v_plain, 4),
    (ja_fullwidth, 0.8),
    (ja_halfkana, 0.8),
    (ja_line_variants, 1),
    (ja_brackets, 0.8),
    (ja_kusa, 1.5),
    (ja_emoji, 2),
    (ja_spaces, 0.3),
]


def _voice(text: str, voices: list[tuple[Callable[[str, random.Random], str], float]], rng: random.Random) -> str:
    fns, weights = zip(*voices, strict=True)
    text = rng.choices(fns, weights=weights)[0](text, rng)
    if rng.random() < 0.15:  # a second, independent habit
        text = rng.choices(fns, weights=weights)[0](text, rng)
    return " ".join(text.split()) if not text.isspace() else text


#: share of each kind's count that is generated (keeps spam-default's training under the 2-minute budget)
SCALE = 0.75


def compose(seed: int) -> list[dict[str, str]]:
    """Rows ``{"text", "label", "lang", "kind"}`` (duplicates possible; the caller de-duplicates)."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    plan: list[tuple[str, str, dict[str, int], Callable[[str, random.Random], str], list]] = [
        ("spam", "en", EN_SPAM_KINDS, spam_en, EN_VOICES),
        ("ham", "en", EN_HAM_KINDS, ham_en, EN_VOICES),
        ("spam", "ja", JA_SPAM_KINDS, spam_ja, JA_VOICES),
        ("ham", "ja", JA_HAM_KINDS, ham_ja, JA_VOICES),
    ]
    for label, lang, kinds, make, voices in plan:
        for kind, count in kinds.items():
            for _ in range(round(count * SCALE)):
                text = _voice(_fill(make(kind, rng), rng), voices, rng)
                rows.append({"text": text, "label": label, "lang": lang, "kind": kind if label == "spam" else "ham"})
    return rows
