-- Browser-like request headers for wrk (-s bench/browser.lua): about 600 bytes of
-- header lines (with Host), the shape of a real Chrome navigation with a few cookies.
-- wrk adds Host itself. bench/run.py prints the measured byte count of the request.
wrk.method = "GET"
wrk.headers["User-Agent"] =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " ..
  "Chrome/120.0.0.0 Safari/537.36"
wrk.headers["Accept"] =
  "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
wrk.headers["Accept-Language"] = "en-US,en;q=0.9,fr;q=0.8"
wrk.headers["Accept-Encoding"] = "gzip, deflate, br"
wrk.headers["Referer"] = "https://www.example.com/products/"
wrk.headers["Cookie"] =
  "session_id=3f2a9c8e7b6d5a4f1e0d; csrftoken=Zx81kQpL0aVt7wNb; " ..
  "_ga=GA1.2.1234567890.1700000000; theme=dark"
wrk.headers["Sec-Fetch-Dest"] = "document"
wrk.headers["Sec-Fetch-Mode"] = "navigate"
wrk.headers["Sec-Fetch-Site"] = "same-origin"
wrk.headers["Sec-Fetch-User"] = "?1"
wrk.headers["Upgrade-Insecure-Requests"] = "1"
wrk.headers["Cache-Control"] = "max-age=0"
