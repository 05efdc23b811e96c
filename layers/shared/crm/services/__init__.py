"""Plain functions holding the product's rules; they take their collections and queues as arguments."""
