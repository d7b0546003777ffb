// Draws the board from the sandbox admin JSON every second: frames as boxes, images as <img>
// of the stored bytes with their title in small type under each, every item at its place on the
// board, the whole board scaled to fit the window.
(function () {
  "use strict";
  const canvas = document.getElementById("canvas");
  const summary = document.getElementById("summary");
  const itemsUrl = canvas.dataset.itemsUrl;
  const MARGIN = 40;      // px around the board's content
  const elements = new Map();  // item id -> element
  const captions = new Map();  // image id -> the title shown under it

  function rect(item) {
    const w = item.geometry.width, h = item.geometry.height;
    return { x: item.board_position.x - w / 2, y: item.board_position.y - h / 2, w: w, h: h };
  }

  function element(item) {
    let el = elements.get(item.id);
    const tag = item.type === "image" ? "IMG" : "DIV";
    if (el && el.tagName !== tag) { el.remove(); el = null; }
    if (!el) {
      el = document.createElement(tag);
      el.dataset.itemId = item.id;
      el.className = "item " + item.type;
      if (item.type === "image") {
        el.addEventListener("error", function () { el.classList.add("broken"); });
        el.addEventListener("load", function () { el.classList.remove("broken"); });
      } else {
        el.appendChild(document.createElement("span")).className = "label";
      }
      canvas.appendChild(el);
      elements.set(item.id, el);
    }
    const title = item.data.title || "";
    el.title = title;
    if (item.type === "image") {
      el.alt = title;
      if (item.blob_url && el.getAttribute("src") !== item.blob_url) el.src = item.blob_url;
    } else {
      el.firstChild.textContent = title;
    }
    return el;
  }

  function caption(item) {
    let el = captions.get(item.id);
    if (!el) {
      el = canvas.appendChild(document.createElement("div"));
      el.className = "caption";
      el.dataset.itemId = item.id;
      captions.set(item.id, el);
    }
    el.textContent = item.data.title || "";
    return el;
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function draw(items) {
    const shown = items.filter(function (i) { return i.geometry && i.board_position; });
    const rects = shown.map(rect);
    const minX = Math.min.apply(null, rects.map(function (r) { return r.x; }).concat([0]));
    const minY = Math.min.apply(null, rects.map(function (r) { return r.y; }).concat([0]));
    const maxX = Math.max.apply(null, rects.map(function (r) { return r.x + r.w; }).concat([1]));
    const maxY = Math.max.apply(null, rects.map(function (r) { return r.y + r.h; }).concat([1]));
    const scale = Math.min(1, (canvas.clientWidth - 2 * MARGIN) / (maxX - minX),
                              (canvas.clientHeight - 2 * MARGIN) / (maxY - minY));
    const seen = new Set();
    shown.forEach(function (item, n) {
      const r = rects[n], el = element(item);
      seen.add(item.id);
      el.style.left = (MARGIN + (r.x - minX) * scale) + "px";
      el.style.top = (MARGIN + (r.y - minY) * scale) + "px";
      el.style.width = (r.w * scale) + "px";
      el.style.height = (r.h * scale) + "px";
      if (item.type === "image") {
        const c = caption(item);
        c.style.left = el.style.left;
        c.style.top = (MARGIN + (r.y + r.h - minY) * scale) + "px";
        c.style.width = el.style.width;
      }
    });
    [elements, captions].forEach(function (shownAs) {
      shownAs.forEach(function (el, id) { if (!seen.has(id)) { el.remove(); shownAs.delete(id); } });
    });
    const images = shown.filter(function (i) { return i.type === "image"; }).length;
    summary.textContent = plural(images, "image", "images") + ", " + plural(shown.length - images, "frame", "frames") +
      " · " + new Date().toLocaleTimeString();
  }

  function poll() {
    fetch(itemsUrl, { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (body) { draw(body.items); })
      .catch(function (e) { summary.textContent = "sandbox unreachable (" + e.message + ")"; })
      .finally(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
