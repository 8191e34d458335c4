"""The html export format: safe rendering (unit tests) and the interactive page (real chromium)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import wave
from html.parser import HTMLParser
from pathlib import Path

import pytest

from runpipe.answer import parse_fields
from runpipe.errors import PipelineConfigError
from runpipe.model import AudioFile, Document, InputResult, MediaItem, RunResult, Segment, Speaker, Usage
from runpipe.plugins.html_report import HtmlExporter, runpipe_register_exporters
from runpipe.plugins.html_report.page import template

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
HOSTILE = '</script><script>alert("x")</script><img src=x onerror=alert(1)> & "quotes" {{css}}'


class Tags(HTMLParser):
    """Every tag name and attribute name a browser would see."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []
        self.attributes: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.names.append(tag)
        self.attributes += [name for name, _ in attrs]


def make_wav(path: Path, seconds: float = 8.0, rate: int = 8000) -> Path:
    """A quiet 220 Hz tone: long enough for the segments, small enough to embed."""
    frames = b"".join(
        struct.pack("<h", int(3000 * math.sin(2 * math.pi * 220 * i / rate))) for i in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


def make_document(wav: Path | None, segments: tuple[Segment, ...] | None = None, **fields) -> Document:
    item = MediaItem(uri=str(wav or "/tmp/episode.wav"), kind="file", name="episode 12.wav")
    audio = AudioFile(source=item, path=wav, mime_type="audio/wav", duration=8.0, content_hash="0" * 64)
    if segments is None:
        segments = (
            Segment(0.0, 1.8, "Welcome back to the show.", speaker="Speaker 1", language="English",
                    language_code="en", emotion="happy", timing="aligned"),
            Segment(2.0, 3.9, "Und wenn jemand Deutsch spricht?", speaker="Speaker 2", language="German",
                    language_code="de", translation="And if someone speaks German?", emotion="neutral",
                    timing="interpolated"),
            Segment(4.25, 5.9, "Then the summary is still in English.", speaker="Speaker 1", language="English",
                    language_code="en", emotion="neutral", timing="model"),
            Segment(6.1, 7.6, "Let us try it on this very conversation.", speaker="Speaker 2", language="English",
                    language_code="en", emotion="sad", timing="approximate"),
        )
    return Document(
        source=item,
        audio=audio,
        task="transcript",
        schema_name="transcript",
        backend="gemini",
        model="gemini-2.5-flash",
        answer=parse_fields({"summary": "Two hosts talk about turning recordings into notes.", **fields}),
        segments=segments,
        speakers=(Speaker("Speaker 1", "Ada"), Speaker("Speaker 2")),
        usage=Usage(prompt_tokens=1200, audio_tokens=256, output_tokens=400, requests=1),
        provenance={"temperature": 0},
        notes=("Timestamps re-timed against the audio.",),
    )


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    return make_wav(tmp_path / "episode.wav")


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def test_registers_the_html_format():
    registered = []
    runpipe_register_exporters(register=registered.append)
    assert registered == [HtmlExporter]
    assert (HtmlExporter.format, HtmlExporter.suffix) == ("html", ".html")


def test_rejects_unknown_and_mistyped_options():
    with pytest.raises(PipelineConfigError, match="embed"):
        HtmlExporter({"embedd_audio": True})
    with pytest.raises(PipelineConfigError, match="embed_audio"):
        HtmlExporter({"embed_audio": "no"})


def test_hostile_text_is_escaped_everywhere(wav):
    segment = Segment(0.5, 2.0, HOSTILE, speaker=HOSTILE, language_code='en" onmouseover="x', emotion=HOSTILE,
                      translation=HOSTILE)
    document = make_document(wav, (segment,), decisions=[{"decision": HOSTILE, "timestamp": HOSTILE}])
    document = Document(**{**{f: getattr(document, f) for f in document.__dataclass_fields__},
                           "speakers": (Speaker(HOSTILE, HOSTILE),), "notes": (HOSTILE,), "provenance": {HOSTILE: HOSTILE}})
    page = HtmlExporter({"title": HOSTILE}).render(document)
    tags = Tags()
    tags.feed(page)
    assert "img" not in tags.names
    assert tags.names.count("script") == 2  # the JSON data and the page's own script
    assert not [name for name in tags.attributes if name.startswith("on")]
    assert "&lt;/script&gt;&lt;script&gt;alert" in page
    assert page.count(":root {") == template("report.css").count(":root {")  # placeholders are filled in one pass: "{{css}}" in text stays text


def test_segment_data_is_embedded_as_json(wav):
    document = make_document(wav)
    page = HtmlExporter().render(document)
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    data = json.loads(match.group(1))
    assert [s["start"] for s in data["segments"]] == [s.start for s in document.segments]
    assert data["segments"][0]["speaker_name"] == "Ada"
    assert data["segments"][1]["translation"] == "And if someone speaks German?"
    assert data["duration"] == 8.0


def test_json_cannot_close_its_script(wav):
    segment = Segment(0.0, 1.0, "</script><!-- & -->", speaker="Speaker 1")
    page = HtmlExporter().render(make_document(wav, (segment,)))
    data = re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1)
    assert "</" not in data and "<!--" not in data
    assert json.loads(data)["segments"][0]["content"] == "</script><!-- & -->"


def test_self_contained_without_network_urls(wav):
    page = HtmlExporter().render(make_document(wav, decisions=[{"decision": "Ship it", "timestamp": "00:04"}]))
    assert not re.search(r"https?://", page)
    assert "data:audio/wav;base64," in page
    assert not re.search(r"<link|@import|url\(", page)


def test_linked_audio_uses_a_file_uri(wav):
    page = HtmlExporter({"embed_audio": False}).render(make_document(wav))
    assert f'src="{wav.resolve().as_uri()}"' in page
    assert "base64" not in page


def test_contract_ids_and_attributes(wav):
    page = HtmlExporter({"title": "Episode 12"}).render(make_document(wav))
    assert '<audio id="player"' in page and '<input id="search"' in page
    assert 'id="search-count" class="search-count" aria-live="polite"' in page
    assert len(re.findall(r'<li class="segment ', page)) == 4
    assert 'data-index="2" data-start="4.25"' in page
    assert page.count('class="bar ') == 4
    assert "<h1>Episode 12</h1>" in page
    assert "Ada" in page and "Speaker 2" in page  # names shown, labels kept where unnamed
    assert 'data-timing="approximate"' in page and 'class="approx"' in page
    assert 'lang="de"' in page and "And if someone speaks German?" in page
    assert "1,200 prompt" in page and "Timestamps re-timed against the audio." in page


def test_speaker_colours_match_between_timeline_and_transcript(wav):
    page = HtmlExporter().render(make_document(wav))
    bars = re.findall(r'<rect class="bar (spk-\d)[^"]*" data-index="(\d+)"', page)
    items = re.findall(r'<li class="segment (spk-\d)[^"]*" id="seg-(\d+)"', page)
    assert sorted((i, c) for c, i in bars) == sorted((i, c) for c, i in items)
    assert {c for c, _ in bars} == {"spk-0", "spk-1"}


def test_other_answer_fields_are_shown(wav):
    page = HtmlExporter().render(make_document(
        wav,
        decisions=[{"decision": "Publish weekly", "speaker": "Speaker 1", "timestamp": "00:04"}],
        action_items=[{"task": "Write the intro", "owner": "Speaker 2", "due": "Friday", "timestamp": "00:06"}],
        answer="",
        events=[{"timestamp": "00:00", "end_timestamp": "00:02", "kind": "music", "description": "Jingle"}],
    ))
    assert 'id="field-decisions"' in page and "Publish weekly" in page
    assert 'data-seek="4"' in page and "Owner: Speaker 2" in page and "Due: Friday" in page
    assert "Jingle" in page and "00:00–00:02" in page
    assert 'id="field-answer"' not in page  # empty fields are left out


def test_empty_transcript_renders(tmp_path):
    document = make_document(None, ())
    page = HtmlExporter().render(document)
    assert "This result has no transcript segments." in page
    assert 'class="segment' not in page and 'id="timeline"' not in page
    assert "no player" in page


def test_render_is_pure(wav):
    document = make_document(wav)
    assert HtmlExporter().render(document) == HtmlExporter().render(document)


def test_index_page(wav):
    done = InputResult(item=make_document(wav).source, status="done", documents=(make_document(wav),))
    failed_item = MediaItem(uri="/in/broken <b>.mp3", kind="file", name="broken <b>.mp3")
    failed = InputResult(item=failed_item, status="failed", error="not audio: <html>", failed_stage="normalize")
    run = RunResult(pipeline="podcast", inputs=(done, failed), run_id="r1")
    page = HtmlExporter().render_index(run, {done.item.uri: "episode 12.html"})
    assert page.count('class="input-row"') == 2
    assert '<a href="episode%2012.html">' in page
    assert "normalize failed: not audio: &lt;html&gt;" in page and "broken &lt;b&gt;.mp3" in page
    assert '<td class="col-speakers" data-label="Speakers"><div>Ada, Speaker 2</div></td>' in page
    assert '<td class="col-duration" data-label="Duration"><div>00:08</div></td>' in page
    assert "2 inputs · 1 done · 1 failed" in page
    assert not re.search(r"https?://|<script", page)


# ---------------------------------------------------------------------------
# In a real browser
# ---------------------------------------------------------------------------


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    chromium = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not chromium:
        _unavailable(f"chromium not found at {CHROMIUM} or on PATH (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install '.[test]')")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def report(tmp_path, wav) -> Path:
    path = tmp_path / "report.html"
    long_word = "Donaudampfschifffahrtsgesellschaftskapitänsmützenabzeichen" * 2
    segments = make_document(wav).segments + (
        Segment(7.7, 7.95, f"A long word: {long_word}.", speaker="Speaker 3", language_code="de", emotion="angry"),
    )
    path.write_text(HtmlExporter().render(make_document(
        wav, segments, decisions=[{"decision": "Try it on this conversation", "timestamp": "00:06"}])), encoding="utf-8")
    return path


def _open(browser, report: Path, **context):
    page = browser.new_context(**context).new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: None if request.url.startswith(("file:", "data:")) else errors.append(request.url))
    page.goto(report.as_uri())
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    return page, errors


@pytest.mark.browser
def test_segments_render_and_clicking_seeks(browser, report):
    page, errors = _open(browser, report, viewport={"width": 1280, "height": 900})
    assert page.locator("li.segment").count() == 5
    assert page.locator(".timeline .bar").count() == 5
    page.evaluate("""() => {
        const player = document.getElementById('player');
        player.addEventListener('seeked', () => { window.seekedAt = player.currentTime; });
    }""")
    segment = page.locator('li.segment[data-index="2"]')
    segment.click()
    page.wait_for_function("window.seekedAt !== undefined")
    assert abs(page.evaluate("window.seekedAt") - 4.25) < 0.05
    assert "active" in segment.get_attribute("class")
    assert segment.get_attribute("aria-current") == "true"
    assert page.locator("li.segment.active").count() == 1
    assert page.locator('.bar.active[data-index="2"]').count() == 1

    page.evaluate("document.getElementById('player').pause(); window.seekedAt = undefined;")
    page.locator('li.segment[data-index="1"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_function("window.seekedAt !== undefined")
    assert abs(page.evaluate("window.seekedAt") - 2.0) < 0.05
    page.evaluate("document.getElementById('player').pause()")
    page.screenshot(path=str(ARTIFACTS / "html-report-desktop.png"), full_page=True)
    assert errors == []


@pytest.mark.browser
def test_highlight_follows_playback(browser, report):
    page, errors = _open(browser, report, viewport={"width": 1280, "height": 900})
    page.evaluate("document.getElementById('player').volume = 0")
    page.locator('li.segment[data-index="1"]').click()  # plays from 2.0 s
    page.wait_for_function("document.querySelector('li.segment.active')?.dataset.index === '2'", timeout=10_000)
    assert page.evaluate("document.getElementById('player').currentTime") >= 4.2
    assert page.locator("li.segment.active").count() == 1
    page.evaluate("document.getElementById('player').pause()")
    assert errors == []


@pytest.mark.browser
def test_timeline_bar_seeks(browser, report):
    page, errors = _open(browser, report, viewport={"width": 1280, "height": 900})
    page.evaluate("""() => {
        const player = document.getElementById('player');
        player.addEventListener('seeked', () => { window.seekedAt = player.currentTime; player.pause(); });
    }""")
    page.locator('.timeline .bar[data-index="3"]').click()
    page.wait_for_function("window.seekedAt !== undefined")
    assert abs(page.evaluate("window.seekedAt") - 6.1) < 0.05
    assert page.locator('li.segment.active').get_attribute("data-index") == "3"
    assert errors == []


@pytest.mark.browser
def test_search_filters_and_marks(browser, report):
    page, errors = _open(browser, report, viewport={"width": 1280, "height": 900})
    page.fill("#search", "GERMAN")  # matches the translation of segment 1 only, whatever the case
    visible = page.locator("li.segment:visible")
    assert visible.count() == 1
    assert visible.first.get_attribute("data-index") == "1"
    assert page.locator("li.segment mark").first.inner_text() == "German"
    assert page.inner_text("#search-count") == "1 of 5 segments match"
    page.fill("#search", "ada")  # speaker names are searched too
    assert page.locator("li.segment:visible").count() == 2
    page.fill("#search", "")
    assert page.locator("li.segment:visible").count() == 5
    assert page.locator("li.segment mark").count() == 0
    assert errors == []


@pytest.mark.browser
def test_phone_width_has_no_horizontal_overflow(browser, report):
    page, errors = _open(browser, report, viewport={"width": 375, "height": 812}, device_scale_factor=2,
                         is_mobile=True, has_touch=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(ARTIFACTS / "html-report-phone.png"), full_page=True)
    assert errors == []


@pytest.mark.browser
def test_index_page_links_to_reports(browser, tmp_path, report):
    document = make_document(report.parent / "episode.wav")
    failed = InputResult(item=MediaItem(uri="/in/broken.mp3", kind="file", name="broken.mp3"), status="failed",
                         error="ffmpeg could not read the file: invalid data found when processing input",
                         failed_stage="normalize")
    run = RunResult(pipeline="podcast", inputs=(InputResult(item=document.source, status="done", documents=(document,)), failed))
    index = report.parent / "index.html"
    index.write_text(HtmlExporter().render_index(run, {document.source.uri: report.name}), encoding="utf-8")
    page = browser.new_context(viewport={"width": 375, "height": 700}, device_scale_factor=2).new_page()
    page.goto(index.as_uri())
    assert page.locator("tr.input-row").count() == 2
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(ARTIFACTS / "html-index-phone.png"), full_page=True)
    page.click("text=Open report")
    page.wait_for_url(report.as_uri())
    assert page.locator("li.segment").count() == 5


@pytest.mark.browser
def test_dark_mode_screenshot(browser, report):
    page, errors = _open(browser, report, viewport={"width": 1280, "height": 900}, color_scheme="dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(247, 247, 245)"
    page.screenshot(path=str(ARTIFACTS / "html-report-dark.png"), full_page=True)
    assert errors == []


@pytest.mark.browser
def test_sound_timeline_bar_seeks_and_shows_moods(browser, tmp_path, wav):
    """A description (no transcript) gets a sound timeline whose bars play from their event."""
    events = [
        {"timestamp": "00:00", "end_timestamp": "00:03", "kind": "music", "description": "Piano", "mood": "calm", "energy": "low"},
        {"timestamp": "00:03", "end_timestamp": "00:06", "kind": "singing", "description": "A choir", "mood": "triumphant",
         "energy": "high", "lyrics_language": "Latin"},
        {"timestamp": "00:06", "end_timestamp": "00:08", "kind": "sound", "description": "Applause"},
    ]
    path = tmp_path / "description.html"
    path.write_text(HtmlExporter().render(make_document(wav, (), description="A concert.", events=events, mood="calm")),
                    encoding="utf-8")
    page, errors = _open(browser, path, viewport={"width": 1280, "height": 900})
    assert page.locator("#sound-timeline .event-bar").count() == 3
    assert page.locator("#sound-timeline .mood-mark").count() == 2
    assert page.locator("#transcript").count() == 0  # no empty transcript box under a description
    page.evaluate("""() => {
        const player = document.getElementById('player');
        player.addEventListener('seeked', () => { window.seekedAt = player.currentTime; player.pause(); });
    }""")
    page.locator("#sound-timeline .event-bar.kind-singing").click()
    page.wait_for_function("window.seekedAt !== undefined")
    assert abs(page.evaluate("window.seekedAt") - 3.0) < 0.05
    page.screenshot(path=str(ARTIFACTS / "html-report-description.png"), full_page=True)
    assert errors == []
