"""Text on the control-room page, in a real headless Chromium (real ``crunchctl process``
runs): the error table wraps names and paths after ``/ _ . -``, never inside a word (wide
screen and phone), and each card shows its quicklooks' title lines as text, legible at card
size (the PNG's own title is a few pixels high there)."""

from __future__ import annotations

from pathlib import Path

from page_helpers import card, images_loaded, process_to_www, severe

from conftest import wait_for

FOLDER = "rsa510_recorder_hall_b"
LONG = "20240417_150000_schottky_long_recording_name_from_the_recorder.tiq"

#: Words (runs without white space inside one text node) whose glyphs sit on more than one
#: line: a word broken mid-way.
BROKEN_WORDS = """
var bad = [];
document.querySelectorAll(arguments[0]).forEach(function (cell) {
  var walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT), node;
  while ((node = walk.nextNode())) {
    var re = /\\S+/g, m;
    while ((m = re.exec(node.data))) {
      var r = document.createRange();
      r.setStart(node, m.index); r.setEnd(node, m.index + m[0].length);
      var tops = new Set(Array.from(r.getClientRects()).map(function (x) {
        return Math.round(x.top); }));
      if (tops.size > 1) bad.push(m[0]);
    }
  }
});
return bad;
"""


def _process(tmp_path: Path, files: list[Path], www: Path) -> None:
    r = process_to_www(tmp_path, files, www)
    assert r.returncode == 1, r.stderr  # the broken recordings failed


def test_error_table_wraps_at_word_and_path_boundaries(tmp_path, make_tiq, browser, serve):
    from selenium.webdriver.common.by import By

    rec, www = tmp_path / "rec" / FOLDER, tmp_path / "www"
    good = make_tiq("20240417_140000_b.tiq", folder=rec)
    for name in (LONG, "broken_header.tiq"):
        (rec / name).write_bytes(b"not a recording")
    _process(tmp_path, [good, rec / LONG, rec / "broken_header.tiq"], www)

    browser.get(serve(www) + "index.html")
    wait_for(lambda: LONG in browser.find_element(By.ID, "errors").text, 10, "the errors")
    for width in (1280, 390):
        browser.set_window_size(width, 1400)
        wait_for(
            lambda: browser.execute_script("return window.innerWidth") <= width,
            5,
            "the window size",
        )
        browser.save_screenshot(str(tmp_path / f"errors-{width}.png"))
        assert browser.execute_script(BROKEN_WORDS, "#errors th, #errors td") == [], width
        assert browser.execute_script(BROKEN_WORDS, "article.card .file") == [], width
        text = browser.find_element(By.ID, "errors").text
        assert LONG in text.replace("\n", "") and FOLDER in text.replace("\n", "")
        page, inner = browser.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert page <= inner, width  # nothing wider than the screen
    assert severe(browser) == []


def test_card_shows_the_quicklook_titles_as_text(tmp_path, make_tiq, browser, serve):
    from PIL import Image
    from selenium.webdriver.common.by import By

    rec, www = tmp_path / "rec" / FOLDER, tmp_path / "www"
    good = make_tiq("20240417_140000_b.tiq", folder=rec)
    (rec / "broken.tiq").write_bytes(b"x")
    _process(tmp_path, [good, rec / "broken.tiq"], www)
    with Image.open(www / f"{FOLDER}.png") as im:
        full = [im.text["Title"], im.text["Description"]]
    with Image.open(www / f"zoom_{FOLDER}.png") as im:
        zoom = [im.text["Title"], im.text["Description"]]
    assert full[0].startswith("20240417_140000_b.tiq") and "window" in full[1]
    assert zoom[0].endswith("(zoom)") and zoom[1].startswith("span ")

    browser.set_window_size(1280, 900)
    browser.get(serve(www) + "index.html")
    wait_for(
        lambda: card(browser, FOLDER).find_elements(By.CSS_SELECTOR, "figcaption"), 10, "the card"
    )
    caps = [
        c
        for c in card(browser, FOLDER).find_elements(By.CSS_SELECTOR, "figcaption")
        if c.is_displayed()
    ]
    assert [c.text.split("\n") for c in caps] == [
        [" ".join(t.split()) for t in full],
        [" ".join(t.split()) for t in zoom],
    ]
    for c in caps:  # legible: body-size text, not the picture's few pixels
        size = browser.execute_script(
            "return parseFloat(getComputedStyle(arguments[0]).fontSize)", c
        )
        assert size >= 14
    assert images_loaded(browser) == []
    assert severe(browser) == []
