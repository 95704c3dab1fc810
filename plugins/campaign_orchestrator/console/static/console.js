// The console's only script: no framework, nothing loaded from the internet.
// `consoleFetch(url, options)` is fetch() with the session's CSRF token in the X-CSRF-Token
// header, which every state-changing request needs (the segment builder's live sizes, the
// template editor's preview). Pages work without it: forms carry the token themselves.
"use strict";
window.consoleFetch = function (url, options) {
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const opts = Object.assign({ credentials: "same-origin" }, options || {});
  opts.headers = Object.assign({ "X-CSRF-Token": token }, opts.headers || {});
  return fetch(url, opts);
};
// Debounce helper for live previews: debounce(fn, 300) calls fn 300 ms after the last call.
window.debounce = function (fn, ms) {
  let timer = null;
  return function (...args) {
    clearTimeout(timer);
    timer = setTimeout(() => fn.apply(this, args), ms);
  };
};
