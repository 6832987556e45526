"""VnExpress business news (RSS 2.0)."""

from ingestion_pipelines.sources.news.rss import RssSettings, RssSource


class VnexpressSettings(RssSettings):
    """VnExpress's business feed."""

    base_url: str = "https://vnexpress.net"
    feeds: list[str] = ["/rss/kinh-doanh.rss"]


class VnexpressNews(RssSource):
    """Business news from VnExpress, hourly."""

    worker_id = "vnexpress_news"
    Settings = VnexpressSettings
