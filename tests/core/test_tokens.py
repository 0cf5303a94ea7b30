from codebase_mcp.core.tokens import code_tokens, query_terms, search_text


def test_identifiers_are_kept_whole_and_split() -> None:
    assert code_tokens("getUserById") == ["getuserbyid", "get", "user", "by", "id"]
    assert code_tokens("MAX_RETRY_COUNT") == ["max_retry_count", "max", "retry", "count"]
    assert code_tokens("HTTPServer2") == ["httpserver2", "http", "server", "2"]


def test_query_terms_drop_stopwords_but_never_everything() -> None:
    assert query_terms("where is the function that parses config") == ["parses", "config"]
    assert query_terms("the") == ["the"]


def test_search_text_includes_path_and_symbol() -> None:
    text = search_text("return 1", "src/payment_gateway.py", "Invoice.total")
    assert "payment_gateway" in text.split() and "gateway" in text.split() and "invoice" in text.split()
