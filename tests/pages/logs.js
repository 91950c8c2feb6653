// A page that logs to the console, throws and fetches when its button is clicked
// (tests/flows/test_page_logs.py), so that the test knows the collector was attached.
document.getElementById("go").addEventListener("click", function () {
  var tag = new URLSearchParams(location.search).get("tag") || "x";
  console.log("hello from the page " + tag);
  console.warn("a warning " + tag);
  console.error("an error " + tag, {answer: 42});
  fetch("/missing-" + tag + ".json").catch(function () {});
  fetch("/logs.html?fetched=" + tag, {method: "POST", body: "secret-body-" + tag}).catch(function () {});
  setTimeout(function () { throw new Error("boom from the page " + tag); }, 0);
});
