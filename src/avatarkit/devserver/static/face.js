"use strict";
// A 2D face (SVG) driven by ARKit blendshape weights: jaw, lips, eyes, brows, cheeks.
// Shared by the live viewer (live.js) and the replay file of `avatarkit inspect --html`.
// update(bs, viseme) redraws it and mirrors the key values on the <svg> element as
// data-jaw-open, data-mouth-open (opening in SVG units), data-viseme and the CSS
// variable --jaw-open, so tests and styles can read them.
(function (global) {
  const NS = "http://www.w3.org/2000/svg";

  function el(parent, name, attrs) {
    const node = document.createElementNS(NS, name);
    for (const key of Object.keys(attrs)) node.setAttribute(key, String(attrs[key]));
    parent.appendChild(node);
    return node;
  }

  function w(bs, name) {
    const v = bs ? Number(bs[name]) : 0;
    return Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0;
  }

  class AvatarFace {
    constructor(container) {
      const svg = el(container, "svg", {
        viewBox: "0 0 200 240", class: "avatar-face", role: "img",
        "aria-label": "avatar face",
      });
      this.svg = svg;
      this.head = el(svg, "ellipse", { cx: 100, cy: 112, rx: 78, ry: 98, class: "skin" });
      this.cheekL = el(svg, "circle", { cx: 52, cy: 150, r: 12, class: "cheek" });
      this.cheekR = el(svg, "circle", { cx: 148, cy: 150, r: 12, class: "cheek" });
      this.eyes = [70, 130].map((cx) => ({
        white: el(svg, "ellipse", { cx, cy: 98, rx: 15, ry: 10, class: "eye-white" }),
        pupil: el(svg, "ellipse", { cx, cy: 98, rx: 5.5, ry: 5.5, class: "pupil" }),
        lid: el(svg, "path", { d: "", class: "lid" }),
        brow: el(svg, "path", { d: "", class: "brow" }),
        cx,
      }));
      el(svg, "path", { d: "M100 110 Q94 135 100 140 Q104 141 106 139", class: "nose" });
      this.mouth = el(svg, "path", { d: "", class: "mouth" });
      this.teeth = el(svg, "path", { d: "", class: "teeth" });
      this.lips = el(svg, "path", { d: "", class: "lips" });
      this.update(null, "sil");
    }

    update(bs, viseme) {
      const jaw = w(bs, "jawOpen");
      const close = w(bs, "mouthClose");
      const funnel = w(bs, "mouthFunnel");
      const pucker = w(bs, "mouthPucker");
      const smileL = w(bs, "mouthSmileLeft");
      const smileR = w(bs, "mouthSmileRight");
      const stretchL = w(bs, "mouthStretchLeft");
      const stretchR = w(bs, "mouthStretchRight");
      const lowerDown = (w(bs, "mouthLowerDownLeft") + w(bs, "mouthLowerDownRight")) / 2;
      const upperUp = (w(bs, "mouthUpperUpLeft") + w(bs, "mouthUpperUpRight")) / 2;
      const puff = w(bs, "cheekPuff");
      const browUp = w(bs, "browInnerUp");
      const blinks = [w(bs, "eyeBlinkLeft"), w(bs, "eyeBlinkRight")];

      // Jaw: the chin drops with jawOpen.
      this.head.setAttribute("ry", (98 + 8 * jaw).toFixed(2));
      this.head.setAttribute("cy", (112 + 4 * jaw).toFixed(2));
      for (const cheek of [this.cheekL, this.cheekR]) {
        cheek.setAttribute("r", (12 + 6 * puff).toFixed(2));
      }

      // Eyes and brows (the face's left is the viewer's right: mirror like a video call).
      this.eyes.forEach((eye, i) => {
        const open = 1 - blinks[i];
        const ry = Math.max(0.4, 10 * open);
        eye.white.setAttribute("ry", ry.toFixed(2));
        eye.pupil.setAttribute("ry", Math.min(5.5, ry).toFixed(2));
        const top = 98 - ry;
        eye.lid.setAttribute("d", `M${eye.cx - 16} ${top.toFixed(2)} Q${eye.cx} ${(top - 4).toFixed(2)} ${eye.cx + 16} ${top.toFixed(2)}`);
        const inner = eye.cx < 100 ? eye.cx + 14 : eye.cx - 14;
        const outer = eye.cx < 100 ? eye.cx - 16 : eye.cx + 16;
        eye.brow.setAttribute("d", `M${outer} 78 Q${eye.cx} ${(71 - 3 * browUp).toFixed(2)} ${inner} ${(77 - 9 * browUp).toFixed(2)}`);
      });

      // Mouth: width from smile/stretch against pucker/funnel, opening from the jaw
      // (held shut by mouthClose), corners lifted by smile, lips thickened by pucker.
      const cx = 100;
      const cy = 168 + 6 * jaw;
      const half = 25 * (1 + 0.22 * (smileL + smileR) / 2 + 0.3 * (stretchL + stretchR) / 2
        - 0.38 * pucker - 0.25 * funnel);
      const opening = Math.max(0, 36 * jaw * (1 - 0.85 * close) + 7 * funnel + 2 * lowerDown);
      const lx = cx - half;
      const rx = cx + half;
      const ly = cy - 7 * smileR + 2 * stretchR;
      const ry = cy - 7 * smileL + 2 * stretchL;
      const upper = cy - 0.3 * opening - 2.5 * upperUp;
      const lower = cy + 0.7 * opening + 3 * lowerDown + 1;
      const mid = (ly + ry) / 2;
      const cUp = 2 * upper - mid;
      const cLow = 2 * lower - mid;
      const round = 0.35 * (funnel + pucker) * half;
      const d = `M${lx.toFixed(2)} ${ly.toFixed(2)} C${(lx + round).toFixed(2)} ${cUp.toFixed(2)} ${(rx - round).toFixed(2)} ${cUp.toFixed(2)} ${rx.toFixed(2)} ${ry.toFixed(2)} C${(rx - round).toFixed(2)} ${cLow.toFixed(2)} ${(lx + round).toFixed(2)} ${cLow.toFixed(2)} ${lx.toFixed(2)} ${ly.toFixed(2)} Z`;
      this.mouth.setAttribute("d", d);
      this.lips.setAttribute("d", d);
      this.lips.setAttribute("stroke-width", (4 + 4 * pucker + 2 * funnel).toFixed(2));
      const toothY = upper + Math.min(4, opening * 0.2);
      this.teeth.setAttribute("d", opening > 6
        ? `M${(cx - half * 0.55).toFixed(2)} ${(upper + 1).toFixed(2)} L${(cx + half * 0.55).toFixed(2)} ${(upper + 1).toFixed(2)} L${(cx + half * 0.5).toFixed(2)} ${toothY.toFixed(2)} L${(cx - half * 0.5).toFixed(2)} ${toothY.toFixed(2)} Z`
        : "");

      const svg = this.svg;
      svg.dataset.jawOpen = jaw.toFixed(3);
      svg.dataset.mouthOpen = opening.toFixed(2);
      svg.dataset.viseme = viseme || "sil";
      svg.style.setProperty("--jaw-open", jaw.toFixed(3));
    }
  }

  global.AvatarFace = AvatarFace;
})(window);
