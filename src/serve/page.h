// The demo web page served at GET /: one self-contained HTML document (no network in the browser).
#pragma once

namespace emotune::serve {
extern const char* const kIndexHtml;
}
