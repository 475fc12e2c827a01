"""Free-mail and ISP mailbox domains: an address there says nothing about the employer.

Registrable domains (what `domains.registrable_domain` returns). A lead at one of these is
never matched to an account by its email domain, and never starts an account; it can still
match by company name.
"""

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de",
        "yahoo.co.jp", "ymail.com", "rocketmail.com", "hotmail.com", "hotmail.co.uk",
        "hotmail.fr", "hotmail.de", "outlook.com", "outlook.fr", "live.com", "live.co.uk",
        "msn.com", "aol.com", "icloud.com", "me.com", "mac.com", "proton.me", "protonmail.com",
        "pm.me", "tutanota.com", "tuta.io", "gmx.com", "gmx.de", "gmx.net", "web.de",
        "t-online.de", "mail.com", "email.com", "zoho.com", "yandex.ru", "yandex.com",
        "mail.ru", "qq.com", "163.com", "126.com", "sina.com", "naver.com", "daum.net",
        "orange.fr", "free.fr", "laposte.net", "libero.it", "virgilio.it", "seznam.cz",
        "wp.pl", "o2.pl", "interia.pl", "bigpond.com", "comcast.net", "verizon.net",
        "att.net", "sbcglobal.net", "btinternet.com", "sky.com", "fastmail.com", "hey.com",
        "duck.com", "rediffmail.com", "uol.com.br", "bol.com.br", "terra.com.br",
    }
)  # fmt: skip
