"""Word lists for unlabelled filler slots (public figures, genres, regions, products, chat questions, ...)."""

from __future__ import annotations

# fmt: off
PUBLIC_FIGURES: tuple[str, ...] = (
    "Angela Merkel", "Emmanuel Macron", "Barack Obama", "Taylor Swift", "Pedro Sánchez", "Giorgia Meloni",
    "Mark Rutte", "Olaf Scholz", "Beyoncé", "Haruki Murakami", "Greta Thunberg", "Bill Gates",
    "Ursula von der Leyen", "King Charles III", "Pope Francis", "Jacinda Ardern", "Keir Starmer", "Fumio Kishida",
)
ATHLETES: tuple[str, ...] = (
    "Lionel Messi", "Serena Williams", "Cristiano Ronaldo", "Shohei Ohtani", "Roger Federer", "Kylian Mbappé",
    "Rafael Nadal", "Simone Biles", "Usain Bolt", "Erling Haaland", "Naomi Osaka", "Lewis Hamilton",
)
HISTORICAL: tuple[str, ...] = (
    "Albert Einstein", "Marie Curie", "Napoleon Bonaparte", "Leonardo da Vinci", "Ada Lovelace", "Isaac Newton",
    "Johann Sebastian Bach", "Frida Kahlo", "Vincent van Gogh", "Cleopatra", "Winston Churchill", "Mozart",
)
FICTIONAL: tuple[str, ...] = (
    "Sherlock Holmes", "Harry Potter", "Hermione Granger", "Frodo Baggins", "Darth Vader", "Elizabeth Bennet",
    "Atticus Finch", "Captain Ahab", "Lara Croft", "Mario", "Don Quixote", "Pippi Longstocking",
)
GENRES: tuple[str, ...] = (
    "Comedy", "Animation", "Drama", "Thriller", "Documentary", "Jazz", "Hip Hop", "Science Fiction", "Horror",
    "Romance", "Western", "Film Noir", "Fantasy", "Musical", "Indie Rock", "Classical",
)
REGIONS: tuple[str, ...] = (
    "Southern Tunisia", "the Black Forest", "Northern Italy", "the Scottish Highlands", "Lake Como", "Patagonia",
    "the Alps", "Provence", "Hokkaido", "Andalusia", "Silicon Valley", "the Ruhr Valley", "Central Park",
    "the Amazon", "Western Australia", "the Balkans", "New England", "Tuscany", "the Sahara", "Cornwall",
)
PRODUCTS: tuple[str, ...] = (
    "Galaxy S23", "ThinkPad X1 Carbon", "PlayStation 5", "Kindle Paperwhite", "iPhone 15 Pro", "AirPods Pro",
    "Surface Laptop 5", "Pixel 8", "Nintendo Switch", "Dyson V15", "Roomba j7", "MacBook Air", "Fire TV Stick",
    "Premium Plan", "Family Plan", "Gold Membership", "Pro Subscription", "Business Starter",
)
TOPICS: tuple[str, ...] = (
    "recursion", "the French Revolution", "photosynthesis", "compound interest", "Kubernetes", "sourdough bread",
    "the Pythagorean theorem", "machine learning", "climate change", "the stock market", "Docker volumes",
    "black holes", "the Roman Empire", "SQL joins", "REST APIs", "meditation", "marathon training", "Git rebase",
)
QUESTIONS: tuple[str, ...] = (
    "Can you help me write a cover letter for a marketing job?", "What's the difference between TCP and UDP?",
    "How do I center a div in CSS?", "Give me three ideas for a rainy Sunday.", "Is it safe to eat raw cookie dough?",
    "Summarize the plot of Hamlet in two sentences.", "How many cups are in a liter?",
    "Translate 'good morning' into Italian.", "What should I pack for a weekend hiking trip?",
    "Why is the sky blue?", "Write a haiku about Mondays.", "How do I convert a list to a set in Python?",
    "What's a good name for a golden retriever?", "Explain inflation like I'm five.",
    "Can you suggest a vegetarian lasagna recipe?", "How long should I boil an egg for a runny yolk?",
    "What are the rules of chess castling?", "Recommend a podcast about history.",
)
PLACEHOLDER_EMAILS: tuple[str, ...] = (
    "user@example.com", "jane.doe@example.org", "john.smith@example.com", "you@yourdomain.com",
    "name@company.com", "test@test.com", "admin@example.net", "your.name@example.com", "foo@bar.com",
)
LANGUAGES: tuple[str, ...] = ("Python", "Rust", "TypeScript", "Go", "Java", "Kotlin", "C++", "Ruby", "Bash")
# fmt: on
