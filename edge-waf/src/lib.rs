//! Edge WAF (see issue "Edge WAF and caching layers").
