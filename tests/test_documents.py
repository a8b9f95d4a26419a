"""Tests for rag.ingest.documents: loading article files and stripping news-page boilerplate.

The corpus tests pin the behaviour on the bundled articles; the synthetic tests use made-up text so the
rules are shown to be general patterns rather than matches on those particular articles.
"""

from __future__ import annotations

import io
from pathlib import Path

import pypdf
import pytest

from rag.ingest.cleaning import clean_news_text
from rag.ingest.documents import (
    MAX_FILE_BYTES,
    SUPPORTED_SUFFIXES,
    Article,
    UnreadableFile,
    load_article,
)

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "documents"

CORPUS_FILES = sorted(CORPUS.glob("*.txt"))


def lines_of(text: str) -> list[str]:
    return text.split("\n")


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def make_pdf(content_stream: str, info_title: str | None = None) -> bytes:
    """A one-page PDF built by hand, with byte offsets in the xref table computed exactly."""
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(content_stream.encode('latin-1'))} >>\nstream\n{content_stream}\nendstream",
    ]
    if info_title is not None:
        objects.append(f"<< /Title ({info_title}) >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    info = f" /Info {len(objects)} 0 R" if info_title is not None else ""
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
    )
    return out


def text_stream(lines: list[str]) -> str:
    shown = " ".join(f"({line}) Tj T*" for line in lines)
    return f"BT /F1 12 Tf 72 720 Td 16 TL {shown} ET"


PDF_LINES = [
    "Harbour council approves offshore wind farm",
    "The council voted on Thursday to approve a forty turbine wind farm.",
    "Construction is expected to begin next spring.",
]


# --------------------------------------------------------------------------------------------------
# The bundled corpus
# --------------------------------------------------------------------------------------------------


def test_public_constants():
    assert frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".pdf"}) == SUPPORTED_SUFFIXES
    assert MAX_FILE_BYTES == 20 * 1024 * 1024


def test_greenwatch_ticker_image_and_dateline_removed():
    article = load_article(CORPUS / "greenwatch-2024-10-04-us-india-critical-minerals-mou.txt")
    text = article.text
    for junk in (
        "News update",
        "Dhaka concerned",
        "mango crop",
        "•",
        "|",
        ".jpg",
        "image-214002",
        "Greenwatch Desk",
    ):
        assert junk not in text
    assert "12:07pm" not in text
    assert article.title == "US and India Forge Alliance on Critical Minerals Supply Chains"
    assert article.title not in text
    assert article.publisher == "Greenwatch"
    assert article.published == "2024-10-04"
    assert text.startswith("The United States and India have announced a new collaboration")
    assert (
        '"We will continue to expand cooperation in new areas and build on our existing strengths, '
        'leveraging the vast opportunities for US-India trade," Goyal stated on social media platform X.'
    ) in text
    assert text.endswith("diversified supply chain for critical minerals.")
    # Paragraph breaks survive, but the source's runs of empty lines are collapsed.
    assert "\n\n" in text and "\n\n\n" not in text


def test_jaishankar_labels_removed_and_structure_kept():
    path = CORPUS / "jaishankar-rubio-meeting-before-critical-minerals-ministerial.txt"
    article = load_article(path)
    text = article.text
    assert "Summary" not in text
    assert "Article –" not in text and "Article" not in lines_of(text)[0]
    assert text.startswith(
        "US and Indian leadership converge on critical minerals cooperation, signifying a strategic shift"
    )
    assert (
        "India’s External Affairs Minister S. Jaishankar met with US Secretary of State Marco Rubio in "
        "Washington."
    ) in text
    # Sub-headings and list items are article content, not boilerplate.
    for kept in ("Background", "What Comes Next?", "- Joint research efforts", "- Upholding labor standards"):
        assert kept in lines_of(text)
    # The first line is a summary sentence, not a headline, so the title comes from the file name.
    assert article.title == "Jaishankar rubio meeting before critical minerals ministerial"
    assert article.publisher is None
    assert article.published is None


def test_forge_country_pair_and_also_read_list_removed():
    article = load_article(CORPUS / "us-launches-global-critical-minerals-initiative-forge.txt")
    text = article.text
    assert "Country:" not in text
    assert "- United States" not in lines_of(text)
    assert "ALSO READ" not in text
    for other_headline in (
        "Priyanka Gandhi",
        "Ukraine and Russia",
        "India-US Trade Deal",
        "Mamata",
        "Vivek Oberoi",
    ):
        assert other_headline not in text
    assert "-" not in lines_of(text)
    assert text.endswith("a successor to the Minerals Security Partnership.")
    assert text.startswith("The United States has launched a global initiative")
    assert article.title == "US Launches Global Initiative to Secure Critical Minerals Supply Chains"
    assert article.title not in text
    assert article.publisher is None


def test_ani_attribution_and_comment_box_removed():
    article = load_article(CORPUS / "ani-2026-critical-minerals-ministerial-project-vault.txt")
    text = article.text
    for junk in ("Based On ANI Report", "No comments", "Post a Comment"):
        assert junk not in text
    assert (
        "The EXIM Board approved a Direct Loan of up to USD 10 billion—the largest in its history—for a "
        "domestic strategic reserve of critical minerals, shielding manufacturers from shocks and boosting "
        "US production and processing."
    ) in text
    assert text.endswith("reducing dependencies and bolstering technological leadership.")
    assert article.title == (
        "US, India Lead Global Push For Diversified Critical Minerals Supply Chains Amid Concentration Risks"
    )
    assert article.publisher == "ANI"
    # "3 February" and "2 February" in the body have no year and sit far from the top: not a dateline.
    assert article.published is None


def test_foxbusiness_source_line_and_also_read_removed():
    article = load_article(CORPUS / "foxbusiness-us-japan-critical-minerals-rare-earths-deal.txt")
    text = article.text
    for junk in ("Source-", "Fox business.com", "Also Read", "Business Minds Media Magazine"):
        assert junk not in text
    assert article.publisher == "Fox Business"
    assert (
        article.title
        == "United States and Japan Forge New Agreement to Secure Critical Minerals and Rare Earths"
    )
    assert text.startswith("The US and Japan have signed a historic deal")
    assert 'He said, "Japan is a great partner, and we will always be there to help Japan."' in text
    assert text.endswith(
        "The goal is to create a supply chain network that is open and good for the environment."
    )


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.stem)
def test_corpus_text_is_tidy_and_verbatim(path: Path):
    article = load_article(path)
    assert article.text and article.title
    assert "\n\n\n" not in article.text
    assert all(line == line.rstrip() for line in lines_of(article.text))
    assert article.text == article.text.strip()
    # Every kept line is a line (or the tail of a labelled line) of the source, character for character.
    source = path.read_text(encoding="utf-8")
    for line in lines_of(article.text):
        if line:
            assert line in source


# --------------------------------------------------------------------------------------------------
# clean_news_text rules on synthetic text
# --------------------------------------------------------------------------------------------------

BODY = (
    "The regional assembly passed the water bill on Tuesday after a twelve-hour debate.\n"
    "\n"
    "Opposition members said the bill would raise bills for farmers in the dry season."
)


def test_clean_returns_article():
    article = clean_news_text("Assembly passes water bill\n" + BODY)
    assert isinstance(article, Article)
    assert article.title == "Assembly passes water bill"
    assert article.text == BODY


def test_ticker_block_with_other_header_and_bullets_removed():
    raw = (
        "Latest headlines\n"
        "  ▪ Floods close mountain pass for third day   |   \n"
        "  ▪ Central bank holds rates steady\u00a0\u00a0|\u00a0\u00a0\n"
        "  ▪ Striking dockers return to work   |   \n"
        "\n"
        "Assembly passes water bill\n"
        "\n" + BODY
    )
    article = clean_news_text(raw)
    assert "Latest headlines" not in article.text
    assert "Floods close" not in article.text and "Central bank" not in article.text
    assert article.title == "Assembly passes water bill"
    assert article.text == BODY


def test_stray_ticker_items_without_header_removed():
    raw = "Assembly passes water bill\n• Ferry strike ends after two weeks  |  \n" + BODY
    assert clean_news_text(raw).text == BODY


def test_ticker_header_without_items_is_kept():
    raw = "Assembly passes water bill\n" + BODY + "\nBreaking\nThe speaker then adjourned the session."
    text = clean_news_text(raw).text
    assert "Breaking" in lines_of(text)


def test_read_more_bullet_list_in_the_middle_removed_and_story_continues():
    raw = (
        "Assembly passes water bill\n"
        "The regional assembly passed the water bill on Tuesday after a twelve-hour debate.\n"
        "READ MORE:\n"
        "• Drought pushes grain prices to a five-year high\n"
        "• Farmers march on the capital over irrigation fees.\n"
        "\n"
        "Opposition members said the bill would raise bills for farmers in the dry season."
    )
    text = clean_news_text(raw).text
    assert "READ MORE" not in text
    assert "Drought pushes" not in text and "Farmers march" not in text
    assert "Opposition members said the bill would raise bills for farmers in the dry season." in text


def test_related_section_of_plain_headlines_removed():
    raw = (
        "Assembly passes water bill\n" + BODY + "\n\nRelated Stories\n\n"
        "Drought pushes grain prices to a five-year high\n\n"
        "Why the river delta is running out of fresh water\n"
    )
    text = clean_news_text(raw).text
    assert text == BODY


def test_recommended_list_with_lone_dash_separators_removed():
    raw = (
        "Assembly passes water bill\n" + BODY + "\nRecommended for you\n-\n"
        "Minister resigns over housing scandal.\n-\nStocks slide as oil jumps\n"
    )
    assert clean_news_text(raw).text == BODY


@pytest.mark.parametrize(
    "line",
    [
        "Also read: Drought pushes grain prices to a five-year high",
        "READ MORE >> Why the river delta is running out of fresh water",
        "Also Read :- The Weekly Harvest Magazine",
        "Related - Minister resigns over housing scandal",
    ],
)
def test_one_line_related_links_removed(line: str):
    raw = "Assembly passes water bill\n" + BODY + "\n" + line
    assert clean_news_text(raw).text == BODY


def test_read_more_inside_a_sentence_is_kept():
    sentence = "Read more about the bill in the assembly's published summary, which runs to forty pages."
    raw = "Assembly passes water bill\n" + BODY + "\n" + sentence
    assert clean_news_text(raw).text.endswith(sentence)


@pytest.mark.parametrize(
    "line",
    [
        "No comments:",
        "Post a Comment",
        "Leave a comment",
        "Leave a Reply",
        "12 comments",
        "Comments are closed.",
        "Share this article",
        "Share on Facebook",
        "Follow us on Twitter and Instagram",
        "Advertisement",
    ],
)
def test_comment_box_and_share_lines_removed(line: str):
    raw = "Assembly passes water bill\n" + BODY + "\n" + line + "\n"
    assert clean_news_text(raw).text == BODY


@pytest.mark.parametrize(
    "line",
    ["© 2025 River Post Media Ltd", "Copyright 2024 The Island Times", "River Post. All rights reserved."],
)
def test_copyright_lines_removed(line: str):
    raw = "Assembly passes water bill\n" + BODY + "\n" + line
    assert clean_news_text(raw).text == BODY


def test_sentence_starting_with_copyright_is_kept():
    sentence = "Copyright law changes were debated in parliament on Tuesday, the minister said."
    raw = "Assembly passes water bill\n" + sentence
    assert clean_news_text(raw).text == sentence


def test_sentence_about_comments_is_kept():
    sentence = "The minister declined to comment on the vote."
    raw = "Assembly passes water bill\n" + BODY + "\n" + sentence
    assert clean_news_text(raw).text.endswith(sentence)


@pytest.mark.parametrize(
    "line",
    [
        "DSC_0042.JPG",
        "photo-2025-01-02-9f8e7d6c5b4a.webp",
        "Photo: harbour_view_final.png",
        "https://cdn.example.org/uploads/2025/01/dam-aerial.jpeg?w=1200",
        "banner.gif",
    ],
)
def test_image_file_name_lines_removed(line: str):
    raw = "Assembly passes water bill\n\n" + line + "\n\n" + BODY
    article = clean_news_text(raw)
    assert article.text == BODY
    assert article.title == "Assembly passes water bill"


def test_prose_mentioning_an_image_file_is_kept():
    sentence = "Officials shared a map called floodplain.png with reporters."
    raw = "Assembly passes water bill\n" + BODY + "\n" + sentence
    assert clean_news_text(raw).text.endswith(sentence)


@pytest.mark.parametrize(
    ("line", "publisher"),
    [
        ("Source: The Hindu", "The Hindu"),
        ("Source- reuters.com", "Reuters"),
        ("Source : www.dailystar.co.uk", "Dailystar"),
        ("(Source: Times of India)", "Times of India"),
        ("(With inputs from Reuters)", "Reuters"),
        ("With inputs from PTI and AFP", "PTI"),
        ("Based on a PTI report", "PTI"),
        ("Based on Xinhua report", "Xinhua"),
        ("This article was originally published on The Conversation.", "The Conversation"),
    ],
)
def test_source_and_attribution_lines_become_publisher(line: str, publisher: str):
    for raw in (
        line + "\nAssembly passes water bill\n" + BODY,
        "Assembly passes water bill\n" + BODY + "\n" + line,
    ):
        article = clean_news_text(raw)
        assert article.text == BODY
        assert article.publisher == publisher


def test_generic_attribution_is_removed_without_publisher():
    article = clean_news_text("Assembly passes water bill\n" + BODY + "\n(With inputs from agencies)")
    assert article.text == BODY
    assert article.publisher is None


def test_source_url_gives_publisher_and_url():
    raw = "Source: https://www.riverpost.example.com/news/water-bill\nAssembly passes water bill\n" + BODY
    article = clean_news_text(raw)
    assert article.text == BODY
    assert article.publisher == "Riverpost.example"
    assert article.url == "https://www.riverpost.example.com/news/water-bill"


@pytest.mark.parametrize(
    "sentence",
    [
        "Sources said the bill would be signed into law within a week, though no date has been fixed.",
        "Source: officials familiar with the negotiations",
        "Based on the findings, the committee concluded the dam was safe",
        "Inputs from farmers were ignored by the ministry",
    ],
)
def test_sentences_resembling_attributions_are_kept(sentence: str):
    raw = "Assembly passes water bill\n" + BODY + "\n" + sentence
    article = clean_news_text(raw)
    assert article.text.endswith(sentence)
    assert article.publisher is None


@pytest.mark.parametrize(
    ("dateline", "iso"),
    [
        ("Published 2025-01-07", "2025-01-07"),
        ("By Anna Berg | 7 January 2025", "2025-01-07"),
        ("Updated: January 7, 2025 10:15 AM IST", "2025-01-07"),
        ("Jan 7 2025", "2025-01-07"),
        ("NAIROBI, 7th Jan. 2025", "2025-01-07"),
        ("Tuesday, Sept 30, 2025, 08:00 GMT", "2025-09-30"),
        ("Posted on 2025/01/07 at 9:30pm", "2025-01-07"),
    ],
)
def test_dateline_formats_give_published_and_are_removed(dateline: str, iso: str):
    for raw in (
        "Assembly passes water bill\n" + dateline + "\n" + BODY,
        dateline + "\n\nAssembly passes water bill\n\n" + BODY,
    ):
        article = clean_news_text(raw)
        assert article.published == iso
        assert article.title == "Assembly passes water bill"
        assert article.text == BODY


@pytest.mark.parametrize("byline", ["By Anna Berg", "by Anna Berg and Tomas Lind", "By Anna Berg, Reuters"])
def test_byline_without_date_removed(byline: str):
    article = clean_news_text("Assembly passes water bill\n" + byline + "\n" + BODY)
    assert article.text == BODY
    assert article.published is None


def test_sentence_starting_with_by_is_kept():
    sentence = "By 2030 the assembly wants every farm well to be metered."
    article = clean_news_text("Assembly passes water bill\n" + sentence + "\n" + BODY)
    assert article.text.startswith(sentence)


def test_desk_without_date_is_byline_only_at_line_end():
    article = clean_news_text("Assembly passes water bill\nBy River Post Desk\n" + BODY)
    assert (article.text, article.publisher) == (BODY, "River Post")
    article = clean_news_text("Help Desk Software Sales Soar\n" + BODY)
    assert (article.title, article.text, article.publisher) == ("Help Desk Software Sales Soar", BODY, None)


def test_desk_byline_gives_publisher_when_no_source():
    raw = "Assembly passes water bill\nRiver Post Desk Politics 2025-01-07, 9:30am\n" + BODY
    article = clean_news_text(raw)
    assert article.publisher == "River Post"
    assert article.published == "2025-01-07"
    assert article.text == BODY


def test_generic_desk_name_is_not_a_publisher_and_source_wins():
    article = clean_news_text("Assembly passes water bill\nWeb Desk 7 January 2025\n" + BODY)
    assert article.publisher is None
    assert article.text == BODY
    raw = "Assembly passes water bill\nRiver Post Desk 7 January 2025\n" + BODY + "\nSource: The Hindu"
    assert clean_news_text(raw).publisher == "The Hindu"


def test_date_in_a_sentence_is_not_a_dateline():
    sentence = "The vote on 7 January 2025 was the closest in the assembly's history."
    raw = "Assembly passes water bill\n" + sentence + "\n" + BODY
    article = clean_news_text(raw)
    assert article.published is None
    assert article.text.startswith(sentence)


def test_date_far_below_the_top_is_not_a_dateline():
    paragraphs = "\n".join(f"Paragraph {n} of the report describes the debate in detail." for n in range(8))
    raw = "Assembly passes water bill\n" + paragraphs + "\n7 January 2025\n"
    article = clean_news_text(raw)
    assert article.published is None
    assert article.text.endswith("7 January 2025")


def test_invalid_calendar_date_is_ignored():
    assert clean_news_text("Assembly passes water bill\nPublished 2025-02-30\n" + BODY).published is None


def test_summary_label_dropped_text_kept():
    raw = (
        "Summary: Lawmakers approve a plan to ration river water in dry months.\n"
        "Article:\n"
        "Highlights - Farmers get a two-year exemption.\n" + BODY
    )
    text = clean_news_text(raw).text
    assert lines_of(text)[:2] == [
        "Lawmakers approve a plan to ration river water in dry months.",
        "Farmers get a two-year exemption.",
    ]
    assert "Summary" not in text and "Article" not in text and "Highlights" not in text


def test_metadata_label_pairs_removed_but_real_lists_kept():
    raw = (
        "Assembly passes water bill\n"
        "- Region:\n"
        "- Southern Europe\n"
        "- Topics:\n"
        "- Water\n"
        "- Agriculture\n"
        "Category: Environment\n" + BODY + "\n"
        "The bill sets out three priorities:\n"
        "- Repair leaking canals\n"
        "- Meter every farm well\n"
    )
    text = clean_news_text(raw).text
    for junk in ("Region", "Southern Europe", "Topics", "- Water", "Agriculture", "Category"):
        assert junk not in text
    assert text.endswith(
        "The bill sets out three priorities:\n- Repair leaking canals\n- Meter every farm well"
    )


def test_title_is_first_headline_like_line_only():
    # A first line ending in a full stop is a sentence: no title, nothing removed.
    article = clean_news_text(BODY)
    assert article.title == ""
    assert article.text == BODY
    long_line = "A" * 151
    article = clean_news_text(long_line + "\n" + BODY)
    assert article.title == ""
    assert article.text.startswith(long_line)


def test_lone_headline_stays_as_text():
    article = clean_news_text("Assembly passes water bill\n")
    assert article.text == "Assembly passes water bill"
    assert article.title == ""


def test_whitespace_tidied_but_text_verbatim():
    raw = (
        "Assembly passes water bill   \r\n\r\n\r\n\r\n"
        "“It’s a fair deal — for now,” she said.  \r\n\r\n\r\n\r\n"
        "- first point\r\n- second point\t\r\n\r\n\r\n"
    )
    article = clean_news_text(raw)
    assert article.title == "Assembly passes water bill"
    assert article.text == "“It’s a fair deal — for now,” she said.\n\n- first point\n- second point"


# --------------------------------------------------------------------------------------------------
# load_article: text and Markdown
# --------------------------------------------------------------------------------------------------


def test_markdown_front_matter_links_and_markup(tmp_path: Path):
    md = (
        "---\n"
        'title: "Dam operators cut releases as reservoir falls"\n'
        "publisher: riverpost.com\n"
        "date: 2025-06-01T08:00:00Z\n"
        "url: https://riverpost.example/dam\n"
        "tags: [water, dams]\n"
        "---\n"
        "# Dam operators cut releases as reservoir falls\n"
        "\n"
        "![Aerial view of the dam](https://cdn.example/dam.jpg)\n"
        "\n"
        "Operators of the **Stonebridge** dam cut releases by a *third*, according to "
        "[the water agency](https://water.example/notice) and <span class='x'>local</span> officials.\n"
        "\n"
        "## What happens next\n"
        "\n"
        "* Farmers get _weekly_ quotas\n"
        "* Towns keep `full` supply\n"
    )
    article = load_article(write(tmp_path, "dam.md", md))
    assert article.title == "Dam operators cut releases as reservoir falls"
    assert article.publisher == "Riverpost"
    assert article.published == "2025-06-01"
    assert article.url == "https://riverpost.example/dam"
    assert article.text == (
        "Operators of the Stonebridge dam cut releases by a third, according to the water agency and local "
        "officials.\n\nWhat happens next\n\n- Farmers get weekly quotas\n- Towns keep full supply"
    )


def test_markdown_first_heading_is_title_without_front_matter(tmp_path: Path):
    md = (
        "# Reservoir falls to record low\n\n"
        "The reservoir fell to 18 percent, the [agency](http://a.example) said.\n"
    )
    article = load_article(write(tmp_path, "reservoir.markdown", md))
    assert article.title == "Reservoir falls to record low"
    assert article.text == "The reservoir fell to 18 percent, the agency said."


def test_markdown_keeps_snake_case_and_unclosed_front_matter_dashes(tmp_path: Path):
    md = "---\nThe file_name_here variable is unchanged, the report said.\n"
    article = load_article(write(tmp_path, "notes.md", md))
    assert "file_name_here" in article.text


def test_txt_front_matter_is_metadata_and_removed(tmp_path: Path):
    txt = "---\ntitle: Ferry strike ends\npublished: 3 March 2025\nsource: The Island Times\n---\n" + BODY
    article = load_article(write(tmp_path, "ferry.txt", txt))
    assert article.title == "Ferry strike ends"
    assert article.published == "2025-03-03"
    assert article.publisher == "The Island Times"
    assert article.text == BODY


def test_title_falls_back_to_file_name(tmp_path: Path):
    article = load_article(write(tmp_path, "water_bill-vote-report.txt", BODY))
    assert article.title == "Water bill vote report"
    assert article.text == BODY


# --------------------------------------------------------------------------------------------------
# load_article: HTML
# --------------------------------------------------------------------------------------------------


def test_html_page_main_text_and_metadata():
    article = load_article(FIXTURES / "harbour-wind-farm.html")
    text = article.text
    assert article.title == "Port town approves offshore wind farm after long dispute"
    assert article.publisher == "The Coastal Courier"
    assert article.published == "2025-03-14"
    assert article.url == "https://www.coastalcourier.example/news/2025/03/harbour-wind-farm"
    assert text.startswith("The harbour council of Eastholm voted on Thursday")
    assert "“Nobody got everything they wanted, but everybody got something they can live with,” said" in text
    assert text.endswith("across the seagrass meadows south of the harbour mouth.")
    assert article.title not in text
    for junk in (
        "Subscribe for unlimited access",  # nav
        "Most read",
        "Ferry timetable",
        "harbour derby",
        "Family bakery",  # sidebar
        "All rights reserved",
        "Privacy policy",  # footer
        "dataLayer",
        "trackPageView",
        "font-family",  # script and style
    ):
        assert junk not in text


def test_html_body_goes_through_cleaning_rules(tmp_path: Path):
    paragraphs = "".join(
        f"<p>{p}</p>"
        for p in (
            "The regional assembly passed the water bill on Tuesday after a debate that ran past midnight.",
            "Opposition members said the bill would raise bills for farmers and vowed to fight it.",
            "Source: The Hindu",
        )
    )
    page = (
        "<html><head><title>Assembly passes water bill</title></head>"
        f"<body><article>{paragraphs}</article></body></html>"
    )
    article = load_article(write(tmp_path, "bill.htm", page))
    assert "Source" not in article.text
    assert article.publisher == "The Hindu"
    assert article.text.startswith("The regional assembly passed the water bill")


def test_html_without_article_text_is_rejected(tmp_path: Path):
    page = (
        "<html><head><title>Nothing</title><script>var a = 1;</script></head><body><nav></nav></body></html>"
    )
    with pytest.raises(UnreadableFile) as info:
        load_article(write(tmp_path, "empty.html", page))
    assert info.value.reason == "no article text found"


# --------------------------------------------------------------------------------------------------
# load_article: PDF
# --------------------------------------------------------------------------------------------------


def test_hand_written_pdf_really_parses():
    reader = pypdf.PdfReader(io.BytesIO(make_pdf(text_stream(PDF_LINES))), strict=True)
    assert reader.pages[0].extract_text().split("\n")[:3] == PDF_LINES


def test_pdf_text_and_title(tmp_path: Path):
    article = load_article(write(tmp_path, "wind.pdf", make_pdf(text_stream(PDF_LINES))))
    assert article.title == PDF_LINES[0]
    assert article.text == "\n".join(PDF_LINES[1:])


def test_pdf_info_title_is_used(tmp_path: Path):
    pdf = make_pdf(text_stream(PDF_LINES[1:]), info_title="Wind farm vote")
    article = load_article(write(tmp_path, "wind.pdf", pdf))
    assert article.title == "Wind farm vote"
    assert article.text == "\n".join(PDF_LINES[1:])


def test_truncated_pdf_is_rejected(tmp_path: Path):
    pdf = make_pdf(text_stream(PDF_LINES))
    with pytest.raises(UnreadableFile) as info:
        load_article(write(tmp_path, "cut.pdf", pdf[: len(pdf) // 2]))
    assert info.value.reason.startswith("not a valid PDF: ")
    assert len(info.value.reason) < 120


def test_non_pdf_named_pdf_is_rejected(tmp_path: Path):
    with pytest.raises(UnreadableFile) as info:
        load_article(write(tmp_path, "fake.pdf", "just some text, not a PDF at all"))
    assert info.value.reason.startswith("not a valid PDF: ")


def test_pdf_without_text_is_rejected(tmp_path: Path):
    drawing_only = "0 0 1 rg 72 72 200 200 re f"
    with pytest.raises(UnreadableFile) as info:
        load_article(write(tmp_path, "scan.pdf", make_pdf(drawing_only)))
    assert info.value.reason == "no text in PDF (scanned?)"


# --------------------------------------------------------------------------------------------------
# load_article: refusals and decoding
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b"  \n\t\r\n   \n", "empty file"),
        ("blank.html", b"\n\n   \n", "empty file"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary file"),
        ("nul.md", b"Some words\x00 and a NUL byte", "binary file"),
        ("only-boilerplate.txt", b"No comments:\nPost a Comment\nShare this\n", "no article text found"),
    ],
)
def test_refused_files(tmp_path: Path, name: str, content: bytes, reason: str):
    with pytest.raises(UnreadableFile) as info:
        load_article(write(tmp_path, name, content))
    assert info.value.reason == reason


def test_unsupported_suffix(tmp_path: Path):
    with pytest.raises(UnreadableFile) as info:
        load_article(write(tmp_path, "story.docx", BODY))
    assert "unsupported" in info.value.reason and ".docx" in info.value.reason


def test_missing_file(tmp_path: Path):
    with pytest.raises(UnreadableFile):
        load_article(tmp_path / "nowhere.txt")


def test_too_large_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = write(tmp_path, "big.txt", "x" * 3000)

    def must_not_read(self):
        raise AssertionError("read a file that is over the limit")

    monkeypatch.setattr(Path, "read_bytes", must_not_read)
    monkeypatch.setattr(Path, "read_text", must_not_read)
    with pytest.raises(UnreadableFile) as info:
        load_article(path, max_bytes=2048)
    assert info.value.reason == "too large (2.9 KB > 2 KB)"


def test_too_large_message_in_megabytes(tmp_path: Path):
    path = write(tmp_path, "big.txt", b"x" * (3 * 1024 * 1024))
    with pytest.raises(UnreadableFile) as info:
        load_article(path, max_bytes=2 * 1024 * 1024)
    assert info.value.reason == "too large (3.0 MB > 2 MB)"


def test_at_the_limit_is_accepted(tmp_path: Path):
    data = ("Assembly passes water bill\n" + BODY).encode()
    assert load_article(write(tmp_path, "ok.txt", data), max_bytes=len(data)).text == BODY


def test_latin1_and_cp1252_decoding(tmp_path: Path):
    raw = "Café owners in Malmö “welcome” the ruling, said Zoë Ångström.\n"
    article = load_article(write(tmp_path, "cafe.txt", raw.encode("cp1252")))
    assert article.text == raw.strip()
    latin = "Señora Muñoz said the piñata ban was lifted.\x81"
    article = load_article(write(tmp_path, "latin.txt", latin.encode("latin-1")))
    assert article.text.startswith("Señora Muñoz said the piñata ban was lifted.")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-16-le"])
def test_utf16_with_bom(tmp_path: Path, encoding: str):
    raw = "Assembly passes water bill\r\n" + BODY.replace("\n", "\r\n") + " Ωμέγα — ok"
    data = raw.encode(encoding)
    if encoding != "utf-16":
        data = ("\ufeff" + raw).encode(encoding)
    assert b"\x00" in data
    article = load_article(write(tmp_path, "u16.txt", data))
    assert article.title == "Assembly passes water bill"
    assert article.text == BODY + " Ωμέγα — ok"


def test_utf8_bom_crlf_and_nfc(tmp_path: Path):
    decomposed = "Cafe\u0301 owners welcomed the ruling."
    data = ("\ufeffAssembly passes water bill\r\n" + decomposed + "\r\n").encode("utf-8")
    article = load_article(write(tmp_path, "bom.txt", data))
    assert article.title == "Assembly passes water bill"
    assert article.text == "Café owners welcomed the ruling."
    assert "\ufeff" not in article.text and "\r" not in article.text


def test_unreadable_file_carries_reason():
    error = UnreadableFile("empty file")
    assert error.reason == "empty file"
    assert str(error) == "empty file"
