"""The transport comparison: tools that run the gateway's transports side by side, through proxies."""
