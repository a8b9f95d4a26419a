"""A seeded, deterministic generator of news-like articles and questions about them.

Article `i` of seed `s` depends only on (s, i), so a corpus of N articles is the first N of a
larger one: the embedding cache built for 100k chunks serves 1k and 10k too. The sentences are
about countries, agencies, companies, minerals, amounts, dates and quotes, like the bundled
critical-minerals corpus, so chunking and BM25 see the same kind of text.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

COUNTRIES = (
    "Argentina", "Australia", "Bolivia", "Brazil", "Canada", "Chile", "China", "the Democratic Republic "
    "of Congo", "Ecuador", "Finland", "France", "Germany", "Ghana", "Guinea", "India", "Indonesia",
    "Japan", "Kazakhstan", "Kenya", "Malaysia", "Mexico", "Mongolia", "Morocco", "Namibia", "Norway",
    "Paraguay", "Peru", "the Philippines", "Poland", "Saudi Arabia", "South Africa", "South Korea",
    "Sweden", "Tanzania", "Turkey", "the United Arab Emirates", "the United Kingdom", "the United States",
    "Uzbekistan", "Vietnam", "Zambia", "Zimbabwe",
)  # fmt: skip
MINERALS = (
    "lithium", "cobalt", "nickel", "graphite", "copper", "manganese", "rare earths", "neodymium",
    "dysprosium", "terbium", "gallium", "germanium", "antimony", "tungsten", "vanadium", "platinum",
    "palladium", "titanium", "tin", "bauxite", "magnesium", "indium", "tellurium", "niobium", "uranium",
)  # fmt: skip
AGENCIES = (
    "the Ministry of Mines", "the Department of Energy", "the Export-Import Bank", "the State Department",
    "the International Energy Agency", "the Geological Survey", "the Ministry of Commerce",
    "the Development Finance Corporation", "the European Commission", "the Ministry of Economy",
    "the Trade Representative's office", "the Ministry of External Affairs", "the Treasury",
    "the World Bank", "the Asian Development Bank", "the Ministry of Industry", "the Energy Commission",
    "the National Mining Agency", "the Investment Authority", "the Ministry of Foreign Affairs",
)  # fmt: skip
COMPANY_HEADS = (
    "Andes", "Northern", "Pacific", "Atlas", "Sierra", "Boreal", "Meridian", "Cobalt Coast", "Red Rock",
    "Silverline", "Horizon", "Granite", "Southern Cross", "Baltic", "Sahel", "Aurora", "Tundra", "Kestrel",
)  # fmt: skip
COMPANY_TAILS = (
    "Lithium Corp", "Rare Earths Ltd", "Minerals", "Mining Group", "Metals Inc", "Resources",
    "Battery Materials", "Refining Co", "Magnetics", "Critical Metals",
)  # fmt: skip
FIRST_NAMES = (
    "Maria", "James", "Aiko", "Rahul", "Fatima", "Lars", "Chen", "Olga", "Kwame", "Sofia", "Daniel",
    "Priya", "Hiroshi", "Amara", "Lucas", "Elena", "Tomasz", "Nadia", "Carlos", "Ingrid", "Samuel", "Leila",
)  # fmt: skip
LAST_NAMES = (
    "Lopez", "Walker", "Tanaka", "Sharma", "Haddad", "Nilsson", "Wei", "Petrova", "Mensah", "Rossi",
    "Cohen", "Iyer", "Sato", "Okafor", "Silva", "Novak", "Kowalski", "Rahman", "Mendes", "Berg", "Kim",
)  # fmt: skip
ROLES = (
    "minister of mines", "energy secretary", "chief executive", "trade minister", "deputy director",
    "chief economist", "head of supply chains", "foreign minister", "senior analyst", "spokesperson",
)  # fmt: skip
PUBLISHERS = (
    "Global Mining Wire", "Reuters", "Metal Bulletin Daily", "The Resource Times", "ANI",
    "Energy Monitor", "Fox Business", "Greenwatch", "Asia Markets Review", "The Commodity Ledger",
)  # fmt: skip
PROJECTS = (
    "Project Vault", "Project Falcon", "Project Keystone", "Project Lodestar", "Project Anvil",
    "Project Meridian", "Project Bedrock", "Project Beacon", "Project Quarry", "Project Forge",
)  # fmt: skip
INITIATIVES = (
    "the Minerals Security Partnership", "the Critical Minerals Alliance", "the Battery Supply Compact",
    "the Clean Metals Forum", "the Rare Earth Reserve Initiative", "the Strategic Stockpile Accord",
)  # fmt: skip
USES = (
    "electric vehicle batteries", "wind turbine magnets", "semiconductors", "defence systems",
    "solar panels", "grid storage", "fighter jets", "smartphones", "robotics", "data centres",
)  # fmt: skip
UNITS = ("tonnes", "metric tons", "kilotonnes")

HEADLINES = (
    "{c1} and {c2} sign {m} supply pact worth {money}",
    "{agency_t} approves {money} for {project} to secure {m}",
    "{company} to build {m} refinery in {c1}",
    "{c1} joins {initiative} as {m} prices climb",
    "{m} exports from {c1} rise {pct} percent",
    "{company} wins {money} loan for {m} mine in {c1}",
    "{c1} restricts {m} exports, rattling {uses} makers",
    "{c1}, {c2} agree to stockpile {m} under {project}",
)
SENTENCES = (
    "{c1} and {c2} signed a memorandum of understanding on {m} on {day}, officials said.",
    "The agreement covers exploration, processing and recycling of {m} used in {uses}.",
    "Under the deal, {company} will supply {qty} {unit} of {m} a year to buyers in {c2} from {year}.",
    "{agency_t} approved a {money} loan for {project}, which aims to build a reserve of {m}.",
    "{person}, {role} at {agency}, said the plan would cut reliance on a single supplier.",
    '"We cannot let one country control {m}," {person} told reporters in {city}.',
    '"This is about {uses} and the jobs that come with them," said {person}, {role} of {c1}.',
    "{c1} produces about {pct} percent of the world's refined {m}, according to {agency}.",
    "Prices of {m} rose {pct} percent in {month} after {c1} announced new export licences.",
    "{company} said it expected first production at its {c1} site in {year}.",
    "The project is expected to create {jobs} jobs and cost about {money}.",
    "Delegations from {n} countries attended the meeting, including {nmin} ministers.",
    "{c2} will hold the chair of {initiative} for the first {nyears} years.",
    "Analysts at {agency} estimate demand for {m} will grow {pct} percent by {year}.",
    "The memorandum was signed by {person} for {c1} and by {person2} for {c2}.",
    "{initiative} now counts {n} members, after {c1} joined on {day}.",
    "Shares of {company} rose {pct} percent on the news.",
    "The facility in {city} will process {qty} {unit} of {m} concentrate each year.",
    "Officials did not name any country, but said supply chains for {m} remain highly concentrated.",
    "{company} and {company2} agreed to a {money} joint venture to refine {m} in {c2}.",
    "The {money} package includes loan guarantees from {agency} and equity from private investors.",
    "{c1} imported {qty} {unit} of {m} in {year}, up from {qty2} {unit} a year earlier.",
    "The talks followed a meeting between {person} and {person2} in {city} on {day}.",
    "Environmental groups in {c1} warned that new {m} mines could threaten water supplies.",
)
CITIES = (
    "Washington", "Tokyo", "New Delhi", "Santiago", "Canberra", "Ottawa", "Brussels", "Jakarta",
    "Nairobi", "Lima", "Seoul", "Riyadh", "London", "Buenos Aires", "Kinshasa", "Astana",
)  # fmt: skip
QUESTIONS = (
    "How much {m} will {company} supply to {c2}?",
    "Who signed the {m} memorandum between {c1} and {c2}?",
    "When did {c1} and {c2} sign the {m} agreement?",
    "How large is the loan {agency} approved for {project}?",
    "What share of the world's refined {m} does {c1} produce?",
    "Which country will chair {initiative}?",
    "How many countries are members of {initiative}?",
    "What did {person} say about {m}?",
    "Why did {m} prices rise after {c1} announced export licences?",
    "How many jobs will the {m} refinery in {c1} create?",
    "When will {company} start production in {c1}?",
    "What is {project} and how much money does it involve?",
    "How much {m} did {c1} import in {year}?",
    "Which companies formed a joint venture to refine {m} in {c2}?",
    "What are the environmental concerns about {m} mining in {c1}?",
    "What is {m} used for and who supplies it?",
)

START_DAY = date(2023, 1, 1)
SPAN_DAYS = 1277  # up to mid-2026, like the bundled corpus


@dataclass(frozen=True)
class SyntheticArticle:
    name: str  # file name
    title: str
    publisher: str
    published: str
    url: str
    body: str

    def file_text(self) -> str:
        """A plain-text article with front matter, which the project's loader reads metadata from."""
        head = f"---\ntitle: {self.title}\npublisher: {self.publisher}\npublished: {self.published}\n"
        return head + f"url: {self.url}\n---\n{self.title}\n\n{self.body}\n"


def _slots(rng: random.Random) -> dict[str, str]:
    c1, c2 = rng.sample(COUNTRIES, 2)
    agency = rng.choice(AGENCIES)
    day = START_DAY + timedelta(days=rng.randrange(SPAN_DAYS))
    return {
        "c1": c1,
        "c2": c2,
        "m": rng.choice(MINERALS),
        "agency": agency,
        "agency_t": agency[0].upper() + agency[1:],
        "company": _company(rng),
        "company2": _company(rng),
        "person": _person(rng),
        "person2": _person(rng),
        "role": rng.choice(ROLES),
        "project": rng.choice(PROJECTS),
        "initiative": rng.choice(INITIATIVES),
        "uses": rng.choice(USES),
        "city": rng.choice(CITIES),
        "money": _money(rng),
        "pct": str(rng.randint(2, 85)),
        "qty": f"{rng.randint(1, 900) * 500:,}",
        "qty2": f"{rng.randint(1, 900) * 500:,}",
        "unit": rng.choice(UNITS),
        "year": str(rng.randint(2024, 2032)),
        "month": day.strftime("%B"),
        "day": f"{day.strftime('%B')} {day.day}, {day.year}",
        "jobs": f"{rng.randint(2, 80) * 50:,}",
        "n": str(rng.randint(12, 60)),
        "nmin": str(rng.randint(5, 45)),
        "nyears": rng.choice(("two", "three", "five")),
        "date": day.isoformat(),
    }


def _company(rng: random.Random) -> str:
    return f"{rng.choice(COMPANY_HEADS)} {rng.choice(COMPANY_TAILS)}"


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def _money(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"${rng.randint(1, 99) / 10:.1f} billion"
    return f"${rng.randint(5, 950)} million"


def _capitalize(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


def article(seed: int, index: int) -> SyntheticArticle:
    """Article `index` of corpus `seed`: 8-16 short paragraphs, about 2,500-5,000 characters."""
    rng = random.Random(seed * 1_000_003 + index)
    slots = _slots(rng)
    title = _capitalize(rng.choice(HEADLINES).format(**slots))
    paragraphs = []
    for _ in range(rng.randint(8, 16)):
        # Most sentences keep the article's subject; some bring in other names, as news does.
        sentences = []
        for _ in range(rng.randint(1, 3)):
            local = {**slots, **{k: v for k, v in _slots(rng).items() if rng.random() < 0.3}}
            sentences.append(_capitalize(rng.choice(SENTENCES).format(**local)))
        paragraphs.append(" ".join(sentences))
    publisher = rng.choice(PUBLISHERS)
    name = f"{slots['date']}-{index:06d}.txt"
    url = f"https://news.example.com/{slots['date'][:4]}/{index:06d}"
    return SyntheticArticle(name, title, publisher, slots["date"], url, "\n\n".join(paragraphs))


def articles(seed: int, count: int) -> list[SyntheticArticle]:
    return [article(seed, i) for i in range(count)]


def write_corpus(folder: Path, seed: int, count: int, per_folder: int = 1000) -> Path:
    """Write `count` articles as text files, a thousand to a subfolder; skips files already there."""
    for i, item in enumerate(articles(seed, count)):
        path = folder / f"part-{i // per_folder:03d}" / item.name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(item.file_text())
    return folder


def questions(seed: int, count: int) -> list[str]:
    """Questions built from the same vocabulary; many name entities that some article mentions."""
    rng = random.Random(seed * 7_919 + 17)
    return [_capitalize(rng.choice(QUESTIONS).format(**_slots(rng))) for _ in range(count)]


def chunks_per_article(seed: int, sample: int = 200, chunk_chars: int = 600, overlap: int = 1) -> float:
    """Mean chunks per article (through the project's own chunker), to size a corpus for N chunks."""
    from rag.ingest.chunking import chunk_text

    total = sum(len(chunk_text(a.body, chunk_chars, overlap)) for a in articles(seed, sample))
    return total / sample


def articles_for_chunks(seed: int, chunks: int, chunk_chars: int = 600, overlap: int = 1) -> int:
    return max(1, round(chunks / chunks_per_article(seed, chunk_chars=chunk_chars, overlap=overlap)))


if __name__ == "__main__":
    sample = article(1, 0)
    print(sample.file_text())
    print(json.dumps(questions(1, 5), indent=1))
    print(f"{chunks_per_article(1):.2f} chunks per article")
