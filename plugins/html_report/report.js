// runpipe HTML report: seek on click, follow playback, search. No network, no dependencies.
"use strict";
(() => {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const segments = data.segments;
  const player = document.getElementById("player");
  const list = document.getElementById("segments");
  const track = document.querySelector(".timeline-track");
  const playhead = document.querySelector(".playhead");
  const items = new Map([...document.querySelectorAll("li.segment")].map((el) => [Number(el.dataset.index), el]));
  const bars = new Map(); // segment index -> its timeline bar and emotion mark
  for (const el of document.querySelectorAll(".timeline [data-index]")) {
    const index = Number(el.dataset.index);
    bars.set(index, [...(bars.get(index) ?? []), el]);
  }
  const barsOf = (index) => bars.get(index) ?? [];
  const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  let active = -1;

  // Each segment stays current until the next one starts (no flicker in short pauses).
  const until = segments.map((s, i) => {
    let next = i + 1;
    while (next < segments.length && segments[next].start <= s.start) next += 1;
    return Math.max(s.end, next < segments.length ? segments[next].start : s.end, s.start + 0.05);
  });
  // The segment playing at time t: the latest-starting one that covers t.
  const indexAt = (t) => {
    let found = -1;
    segments.forEach((s, i) => {
      if (s.start <= t + 0.01 && t < until[i]) found = i;
    });
    return found;
  };

  const inView = (el) => {
    const r = el.getBoundingClientRect();
    return r.bottom > 0 && r.top < window.innerHeight;
  };

  // Follow playback only while the reader is looking at the transcript: never yank the page away.
  const setActive = (index, follow) => {
    if (index === active) return;
    const previous = items.get(active);
    const wasWatching = previous ? inView(previous) : list !== null && inView(list);
    previous?.classList.remove("active");
    previous?.removeAttribute("aria-current");
    for (const el of barsOf(active)) el.classList.remove("active");
    active = index;
    const item = items.get(index);
    if (!item) return;
    item.classList.add("active");
    item.setAttribute("aria-current", "true");
    for (const el of barsOf(index)) el.classList.add("active");
    if (follow && wasWatching && !item.hidden) {
      item.scrollIntoView({ block: "nearest", behavior: smooth ? "smooth" : "auto" });
    }
  };

  const update = (follow) => {
    const t = player.currentTime;
    if (playhead && data.duration > 0) {
      playhead.hidden = false;
      playhead.style.left = `${Math.min(100, (t / data.duration) * 100)}%`;
    }
    setActive(indexAt(t), follow);
  };

  // "Play from here": seek, and start playing if the player was paused.
  const seek = (t) => {
    if (!player || !Number.isFinite(t)) return;
    player.currentTime = Math.max(0, t);
    update(false);
    if (player.paused) player.play().catch(() => {});
  };

  if (player) {
    player.addEventListener("timeupdate", () => update(!player.paused));
    player.addEventListener("seeked", () => update(false));
  }

  const selecting = () => {
    const selection = window.getSelection();
    return selection !== null && !selection.isCollapsed;
  };

  list?.addEventListener("click", (event) => {
    const item = event.target.closest("li.segment");
    if (item && !selecting()) seek(Number(item.dataset.start));
  });
  list?.addEventListener("keydown", (event) => {
    const item = event.target;
    if (item.matches("li.segment") && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      seek(Number(item.dataset.start));
    }
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-seek]");
    if (button) seek(Number(button.dataset.seek));
  });
  track?.addEventListener("click", (event) => {
    const bar = event.target.closest(".bar");
    if (bar) {
      seek(segments[Number(bar.dataset.index)].start);
      return;
    }
    const box = track.getBoundingClientRect();
    seek(Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)) * data.duration);
  });

  // Search: case-insensitive over speaker, content and translation; matches are marked.
  const search = document.getElementById("search");
  const count = document.getElementById("search-count");
  if (!search) return;
  const fields = [...items.values()].map((item) =>
    [...item.querySelectorAll("[data-text]")].map((el) => ({ el, text: el.textContent })),
  );
  const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

  const mark = (el, text, pattern) => {
    el.replaceChildren();
    let last = 0;
    for (const match of pattern ? text.matchAll(pattern) : []) {
      const hit = document.createElement("mark");
      hit.textContent = match[0];
      el.append(text.slice(last, match.index), hit);
      last = match.index + match[0].length;
    }
    el.append(text.slice(last));
  };

  const applySearch = () => {
    const query = search.value.trim();
    const pattern = query ? new RegExp(escapeRegExp(query), "giu") : null;
    let shown = 0;
    [...items.values()].forEach((item, i) => {
      let hit = !pattern;
      for (const { el, text } of fields[i]) {
        mark(el, text, pattern);
        if (pattern && text.search(pattern) !== -1) hit = true;
      }
      item.hidden = !hit;
      for (const el of barsOf(Number(item.dataset.index))) el.classList.toggle("dimmed", !hit);
      if (hit) shown += 1;
    });
    const total = items.size;
    count.textContent = query
      ? `${shown} of ${total} segment${total === 1 ? "" : "s"} match`
      : `${total} segment${total === 1 ? "" : "s"}`;
  };
  search.addEventListener("input", applySearch);
})();
