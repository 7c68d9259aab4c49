"""The generated chat corpus and the labelled queries `bench/search_bench.py` measures search with.

Filler messages are composed from topic phrases and templates with a seeded generator, so every run (and
both databases) sees the same texts. Each labelled query has one relevant message, a "needle" planted in a
room of one user; the queries are worded three ways: sharing a rare word with the needle, sharing none
(meaning only), and a mix.
"""

from __future__ import annotations

import random

TOPICS: dict[str, list[str]] = {
    "javascript": ["an async function", "a JavaScript promise chain", "the array map callback", "a React hook",
                   "the event listener", "a closure in a loop", "the fetch call", "a Node.js stream",
                   "the TypeScript interface", "a webpack build"],
    "python": ["a Python generator", "the list comprehension", "a decorator", "the virtualenv", "a pandas dataframe",
               "the asyncio event loop", "a dataclass", "the pytest fixture", "a Django queryset", "the pip install"],
    "databases": ["the SQL join", "a PostgreSQL index", "the migration", "a slow query", "the foreign key",
                  "a SQLite transaction", "the connection pool", "a Redis cache", "the query planner",
                  "a backup script"],
    "cooking": ["the sourdough starter", "a tomato sauce", "the roast chicken", "a vegetable curry", "the pie crust",
                "a risotto", "the cast iron pan", "a lentil soup", "the bread dough", "a chocolate cake"],
    "travel": ["the train to Vienna", "a hotel near the station", "the flight connection", "a rental car",
               "the hiking trail", "a travel insurance claim", "the passport renewal", "a night bus",
               "the ferry timetable", "a city pass"],
    "garden": ["the tomato plants", "a compost heap", "the lawn", "an apple tree", "the raised bed",
               "a rose bush", "the herb pots", "an irrigation timer", "the hedge", "a greenhouse"],
    "fitness": ["a running plan", "the knee pain", "a strength routine", "the rowing machine", "a 10k race",
                "the stretching", "a swimming session", "the heart rate zones", "a cycling route",
                "the protein intake"],
    "money": ["the monthly budget", "a savings account", "the tax return", "an index fund", "the mortgage rate",
              "a credit card bill", "the pension plan", "an invoice", "the expense report", "a currency exchange"],
    "linux": ["the bash script", "a systemd service", "the cron job", "an SSH key", "the disk partition",
              "a file permission", "the nginx config", "a Docker container", "the firewall rule",
              "a kernel update"],
    "music": ["the guitar chords", "a piano scale", "the drum pattern", "a song lyric", "the mixing desk",
              "a metronome", "the violin bow", "a chord progression", "the audio interface", "a choir rehearsal"],
    "family": ["the wedding plans", "the baby's sleep", "a picky eater", "the school application",
               "grandpa's doctor visit", "the dog walk", "a rescue cat", "the birthday party", "the neighbours",
               "the babysitter"],
    "home": ["the leaking roof", "the boiler", "the attic conversion", "the electricity bill", "the solar panels",
             "the wifi router", "the washing machine", "the car brakes", "the spare key", "the heat pump"],
    "hobbies": ["the chess opening", "a knitting pattern", "the pottery wheel", "the telescope", "a bee hive",
                "the fishing trip", "the quilt", "an escape room", "the book club", "the marathon training"],
}

QUESTIONS = [
    "How do I fix {s}? It keeps {p}.",
    "Can you explain why {s} is {p} after the last change?",
    "What is the best way to set up {s} for a beginner?",
    "I tried {s} again today and it is still {p}. Any ideas?",
    "Is there a simpler approach to {s} than what I did yesterday?",
    "Could you compare {s} with the usual alternative and say which is faster?",
    "My friend says {s} should never be {p}. Is that true?",
    "Write a short checklist for {s}, please.",
]
ANSWERS = [
    "Start by checking {s}; most of the time it is {p} because of a small setting that changed.",
    "A common cause is that {s} is {p}. Try the simplest version first, then add one thing at a time.",
    "For {s}, keep notes of what you change, since being {p} usually has one clear reason.",
    "Here is a checklist for {s}: look at the defaults, test with a small example, and only then tune it.",
    "You can make {s} more reliable by measuring first; guessing is why it ends up {p}.",
    "The usual alternative to {s} is easier to read but a little slower in practice.",
]
PROBLEMS = ["failing", "slow", "breaking", "too expensive", "confusing", "inconsistent", "stuck", "noisy",
            "unreliable", "getting worse"]
FOLLOW_UPS = ["Thanks, that helped.", "I will try that tonight.", "Makes sense.", "What about on weekends?",
              "Could you give an example?", "That did not work for me.", "Perfect, thank you!"]

# (needle message, query): `kw` shares a rare word, `sem` shares none, `mix` shares some.
LABELLED: list[tuple[str, str, str]] = [
    ("kw", "My sister's wedding is in Lisbon in June and I still need to book the ferry to Sintra.",
     "Lisbon wedding"),
    ("kw", "The Raspberry Pi in the garage logs the freezer temperature every five minutes.",
     "raspberry pi freezer"),
    ("kw", "Our landlord said the boiler service is due on the third of March.", "boiler service"),
    ("kw", "I keep the spare house key in the blue ceramic owl on the porch.", "ceramic owl key"),
    ("kw", "The quarterly OKR review moved to Thursday because the CFO is travelling.", "OKR review"),
    ("kw", "Remember: the vet said Biscuit needs deworming tablets every three months.", "Biscuit deworming"),
    ("kw", "My kombucha SCOBY grew a second layer after two weeks in the cupboard.", "kombucha scoby"),
    ("kw", "The Terraform plan wants to destroy the staging bucket, so I aborted it.", "terraform staging bucket"),
    ("kw", "Grandma's goulash recipe uses smoked paprika and caraway seeds.", "goulash caraway"),
    ("kw", "The sprinkler controller in zone four short-circuited during the thunderstorm.",
     "sprinkler zone four"),
    ("kw", "I switched the Kubernetes ingress from nginx to Traefik last sprint.", "traefik ingress"),
    ("kw", "Our book club picked Middlemarch for the autumn and nobody has finished it.", "Middlemarch book club"),
    ("kw", "The dentist appointment for the crown is at 8:40 on Tuesday.", "crown dentist appointment"),
    ("kw", "Carlos lent me his theodolite for the survey of the back field.", "theodolite"),
    ("kw", "The heat pump's defrost cycle runs every ninety minutes in January.", "heat pump defrost"),
    ("kw", "Use the Mandelbrot set to test the shader's floating point precision.", "mandelbrot shader"),
    ("kw", "The marathon bib number is 4127 and the start corral is C.", "marathon bib corral"),
    ("kw", "The ukulele needs new Aquila strings before the open mic night.", "ukulele strings"),
    ("kw", "Invoice 2291 from the carpenter still lists the oak shelves twice.", "carpenter invoice oak"),
    ("kw", "My sourdough hydration is 78 percent with a rye levain.", "rye levain hydration"),
    ("sem", "I am terrified of speaking in front of large audiences at conferences.",
     "fear of public speaking"),
    ("sem", "The baby wakes up every two hours at night and we are exhausted.",
     "newborn sleep deprivation for parents"),
    ("sem", "Our startup ran out of money and we had to let half the team go.",
     "company layoffs after funding dried up"),
    ("sem", "I felt dizzy and my heart was racing after the third espresso.",
     "too much caffeine symptoms"),
    ("sem", "We adopted a rescue greyhound who is scared of the stairs.",
     "new dog afraid of steps"),
    ("sem", "The kids refuse to eat anything green at dinner.", "children picky about vegetables"),
    ("sem", "My laptop fan is screaming and the case is almost too hot to touch.",
     "computer overheating loud cooling"),
    ("sem", "I moved to Berlin and still cannot understand anyone at the bakery.",
     "struggling with German after relocating"),
    ("sem", "The roof leaked onto the bedroom ceiling during last night's storm.",
     "water coming through the house top in heavy rain"),
    ("sem", "My manager never replies to emails and then blames me for delays.",
     "boss unresponsive and unfair"),
    ("sem", "I finally paid off the student loans after nine years.", "cleared university debt"),
    ("sem", "The car made a grinding noise whenever I pressed the brakes.",
     "vehicle squealing when stopping"),
    ("sem", "Grandpa is forgetting names and got lost driving to the shops.",
     "elderly relative memory loss signs"),
    ("sem", "We planted wildflowers so the bees would come back to the meadow.",
     "attracting pollinators to a field"),
    ("sem", "I cannot fall asleep before 3 am no matter how tired I am.", "insomnia late at night"),
    ("sem", "The neighbours' party music kept the whole street awake until dawn.",
     "loud noise from next door all night"),
    ("sem", "My daughter got accepted to medical school in Edinburgh!",
     "child admitted to study to become a doctor"),
    ("sem", "I sprained my ankle jumping off the climbing wall.", "twisted foot at the bouldering gym"),
    ("sem", "The flight was cancelled and the airline offered only a voucher.",
     "compensation for a scrapped plane trip"),
    ("sem", "Our wifi drops every evening when everyone starts streaming films.",
     "internet connection unstable at night with many users"),
    ("mix", "The chess club tournament uses a Swiss system with seven rounds.",
     "how many rounds in the chess tournament"),
    ("mix", "I want to learn to knit a scarf before winter, but the wool keeps tangling.",
     "knitting yarn getting knotted"),
    ("mix", "The solar panels produced 31 kWh yesterday, a record for April.",
     "best day of solar power generation"),
    ("mix", "Please remind me to renew the fishing licence before the trout season opens.",
     "licence needed for trout fishing"),
    ("mix", "The wedding photographer wants a deposit of 500 euros by Friday.",
     "photographer deposit deadline"),
    ("mix", "Our beehive swarmed and settled in the neighbour's cherry tree.",
     "bees left the hive into a tree"),
    ("mix", "I am training for a triathlon but my swimming is much weaker than my cycling.",
     "triathlon weakest discipline is the swim"),
    ("mix", "The museum's dinosaur exhibit closes at five on Sundays.",
     "when does the dinosaur exhibition shut"),
    ("mix", "Our pottery class fired the vases but two of them cracked in the kiln.",
     "ceramics broke while firing"),
    ("mix", "The telescope showed Saturn's rings clearly from the balcony.",
     "saw a planet with rings through my telescope"),
    ("mix", "I am allergic to penicillin, so the doctor prescribed something else.",
     "antibiotic allergy alternative"),
    ("mix", "The escape room had a puzzle with a cipher on an old typewriter.",
     "escape room cipher puzzle"),
    ("mix", "My grandmother's quilt has forty hexagon patches from old dresses.",
     "patchwork quilt made from clothing"),
    ("mix", "The bakery on Elm Street sells cardamom buns on Saturdays only.",
     "where to buy cardamom pastries on the weekend"),
    ("mix", "We are renovating the attic into an office with a skylight.",
     "converting the loft into a workspace"),
    ("mix", "The volcano hike on Tenerife starts at the cable car station at dawn.",
     "Teide volcano climb starting point"),
    ("mix", "My sourdough pizza oven reaches 450 degrees in twenty minutes.",
     "how hot does the pizza oven get"),
    ("mix", "The orchestra rehearses the Brahms symphony on Wednesday evenings.",
     "orchestra practice day for Brahms"),
    ("mix", "Our electricity bill doubled after the new tariff in October.",
     "power bill went up with the new tariff"),
    ("mix", "The lighthouse tour requires climbing 219 steps to the lamp room.",
     "how many stairs in the lighthouse"),
]


def filler(rng: random.Random, role: str) -> str:
    """One chat message about a random topic: a question from the user, an answer from the assistant."""
    topic = rng.choice(list(TOPICS))
    subject, problem = rng.choice(TOPICS[topic]), rng.choice(PROBLEMS)
    if role == "user":
        text = rng.choice(QUESTIONS).format(s=subject, p=problem)
        if rng.random() < 0.3:
            text = rng.choice(FOLLOW_UPS) + " " + text
        return text
    text = rng.choice(ANSWERS).format(s=subject, p=problem)
    if rng.random() < 0.5:
        other = rng.choice(TOPICS[topic])
        text += " " + rng.choice(ANSWERS).format(s=other, p=rng.choice(PROBLEMS))
    return text


def corpus(*, users: int, rooms: int, messages: int, seed: int = 20) -> tuple[list[tuple[int, int, str, str]],
                                                                          dict[int, int]]:
    """(user, room, role, text) for every message, rooms dealt evenly to users, with the needles planted;
    and where each needle is (row index -> index in LABELLED)."""
    rng = random.Random(seed)
    per_room = messages // rooms
    rows: list[tuple[int, int, str, str]] = []
    for room in range(rooms):
        user = room % users
        for i in range(per_room):
            role = "user" if i % 2 == 0 else "assistant"
            rows.append((user, room, role, filler(rng, role)))
    slots = [slot * 2 for slot in rng.sample(range(len(rows) // 2), len(LABELLED))]  # user turns only
    needles = {}
    for n, slot in enumerate(slots):
        user, room, _role, _text = rows[slot]
        rows[slot] = (user, room, "user", LABELLED[n][1])
        needles[slot] = n
    return rows, needles
