// The tab's URL and title.
return {url: location.href, title: document.title};
