"""CafeF stock-market news (RSS 2.0). CafeF answers 503 without a browser User-Agent, which the
HTTP client's browser impersonation provides."""

from ingestion_pipelines.sources.news.rss import RssSettings, RssSource


class CafefSettings(RssSettings):
    """CafeF's stock-market feed (served to browsers only)."""

    base_url: str = "https://cafef.vn"
    feeds: list[str] = ["/thi-truong-chung-khoan.rss"]


class CafefNews(RssSource):
    """Stock-market news from CafeF, hourly."""

    worker_id = "cafef_news"
    Settings = CafefSettings
