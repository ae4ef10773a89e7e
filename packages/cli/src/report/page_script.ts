/**
 * The script of the report page (plain ES2017 run by the browser, kept as text: it is inlined
 * after uPlot's). It reads the page's data (a JSON script element), draws one uPlot chart per
 * quantity, marks each chart element once drawn (`data-drawn`: the number of series drawn; the
 * body's `data-rendered`: the number of charts drawn) and saves all charts as one PNG on the
 * button (`#save-png`). `report.html#export-check` also builds that PNG at load and records its
 * size in the body's `data-export` ("WIDTHxHEIGHT BYTES"), which is how the tests check it.
 */
export const PAGE_SCRIPT = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var color = function (run) { return data.colors[run % data.colors.length]; };
  var plots = [];
  var drawn = 0;

  function fmt(v) {
    if (v == null) return '–';
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return Number(v.toPrecision(4)).toExponential();
    return String(Number(v.toPrecision(5)));
  }

  function width(el) { return Math.max(320, Math.floor(el.clientWidth)); }

  var boxes = document.querySelectorAll('.chart');
  data.charts.forEach(function (c, i) {
    var box = boxes[i];
    var target = box.querySelector('.plot');
    var series = [{ label: 'step' }].concat(c.series.map(function (s) {
      return { label: data.runs[s.run].name, stroke: color(s.run), width: 1.5, spanGaps: true, value: function (u, v) { return fmt(v); }, points: { show: c.x.length <= 60 } };
    }));
    var opts = {
      width: width(target),
      height: 260,
      scales: { x: { time: false } },
      series: series,
      axes: [{ label: 'step' }, { values: function (u, vals) { return vals.map(fmt); }, size: 70 }],
      legend: { live: true },
      hooks: {
        draw: [function (u) {
          var first = box.dataset.drawn === undefined;
          box.dataset.drawn = String(u.series.slice(1).filter(function (s) { return s.show; }).length);
          if (first && ++drawn === data.charts.length) {
            document.body.dataset.rendered = String(drawn);
            if (location.hash === '#export-check') exportCheck();
          }
        }],
      },
    };
    var aligned = [c.x].concat(c.series.map(function (s) { return s.y; }));
    plots.push({ chart: c, plot: new uPlot(opts, aligned, target) });
  });
  if (data.charts.length === 0) document.body.dataset.rendered = '0';

  window.addEventListener('resize', function () {
    plots.forEach(function (p) { p.plot.setSize({ width: width(p.plot.root.parentNode), height: 260 }); });
  });

  // every chart in one image, two a row: title, plot (axes included), a legend of the runs
  function composite() {
    var ratio = window.devicePixelRatio || 1;
    var cols = plots.length > 1 ? 2 : 1;
    var pad = Math.round(12 * ratio), titleH = Math.round(28 * ratio), legendH = Math.round(22 * ratio);
    var cw = 0, ch = 0;
    plots.forEach(function (p) { cw = Math.max(cw, p.plot.ctx.canvas.width); ch = Math.max(ch, p.plot.ctx.canvas.height); });
    var rows = Math.ceil(plots.length / cols);
    var head = Math.round(36 * ratio);
    var out = document.createElement('canvas');
    out.width = Math.max(1, cols * (cw + pad) + pad);
    out.height = Math.max(1, head + rows * (titleH + ch + legendH + pad) + pad);
    var g = out.getContext('2d');
    g.fillStyle = '#ffffff';
    g.fillRect(0, 0, out.width, out.height);
    g.fillStyle = '#111111';
    g.textBaseline = 'middle';
    g.font = 'bold ' + Math.round(16 * ratio) + 'px sans-serif';
    g.fillText(data.title, pad, head / 2 + pad / 2);
    plots.forEach(function (p, i) {
      var x = pad + (i % cols) * (cw + pad);
      var y = head + pad + Math.floor(i / cols) * (titleH + ch + legendH + pad);
      g.fillStyle = '#111111';
      g.font = 'bold ' + Math.round(14 * ratio) + 'px sans-serif';
      g.fillText(p.chart.title, x, y + titleH / 2);
      g.drawImage(p.plot.ctx.canvas, x, y + titleH);
      var lx = x;
      g.font = Math.round(12 * ratio) + 'px sans-serif';
      p.chart.series.forEach(function (s) {
        var name = data.runs[s.run].name;
        g.fillStyle = color(s.run);
        g.fillRect(lx, y + titleH + ch + legendH / 2 - 2 * ratio, 14 * ratio, 4 * ratio);
        g.fillStyle = '#111111';
        g.fillText(name, lx + 18 * ratio, y + titleH + ch + legendH / 2);
        lx += 18 * ratio + g.measureText(name).width + 16 * ratio;
      });
    });
    return out;
  }

  function savePng() {
    var canvas = composite();
    canvas.toBlob(function (blob) {
      var a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = data.pngName;
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    }, 'image/png');
  }

  function exportCheck() {
    var canvas = composite();
    var url = canvas.toDataURL('image/png');
    document.body.dataset.export = canvas.width + 'x' + canvas.height + ' ' + Math.floor((url.length - 'data:image/png;base64,'.length) * 3 / 4);
  }

  document.getElementById('save-png').addEventListener('click', savePng);
  window.kexueReport = { composite: composite, savePng: savePng };
})();
`;
