"""Word lists for the procedural suite; every entry is written for this project."""

from __future__ import annotations

NAMES = [
    "Ava",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Iris",
    "Jon",
    "Kira",
    "Leo",
    "Maya",
    "Nico",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Uma",
    "Victor",
    "Wen",
    "Yusuf",
    "Zoe",
]

ITEMS = [
    "apples",
    "pencils",
    "stickers",
    "marbles",
    "books",
    "cookies",
    "stamps",
    "shells",
    "cards",
    "balloons",
    "buttons",
    "crayons",
]

# (singular, plural) of things with a price.
GOODS = [
    ("notebook", "notebooks"),
    ("ticket", "tickets"),
    ("sandwich", "sandwiches"),
    ("toy car", "toy cars"),
    ("plant", "plants"),
    ("scarf", "scarves"),
    ("lamp", "lamps"),
    ("puzzle", "puzzles"),
]

# (big singular, big plural, small singular, small plural, how many small units make one big unit).
UNITS = [
    ("meter", "meters", "centimeter", "centimeters", 100),
    ("kilometer", "kilometers", "meter", "meters", 1000),
    ("kilogram", "kilograms", "gram", "grams", 1000),
    ("liter", "liters", "milliliter", "milliliters", 1000),
    ("hour", "hours", "minute", "minutes", 60),
    ("minute", "minutes", "second", "seconds", 60),
    ("day", "days", "hour", "hours", 24),
    ("week", "weeks", "day", "days", 7),
    ("foot", "feet", "inch", "inches", 12),
    ("yard", "yards", "foot", "feet", 3),
    ("dollar", "dollars", "cent", "cents", 100),
    ("year", "years", "month", "months", 12),
]

# No word belongs to two categories (no "orange", no "plum").
CATEGORIES = {
    "fruit": ["apple", "banana", "cherry", "grape", "mango", "pear", "peach", "lemon", "kiwi", "melon", "apricot"],
    "animal": ["dog", "horse", "rabbit", "tiger", "zebra", "camel", "otter", "eagle", "frog", "whale", "goat"],
    "vehicle": ["car", "bus", "bicycle", "train", "truck", "boat", "tractor", "scooter", "helicopter", "van"],
    "tool": ["hammer", "saw", "wrench", "screwdriver", "shovel", "drill", "chisel", "rake", "pliers"],
    "musical instrument": ["piano", "violin", "drum", "flute", "guitar", "trumpet", "harp", "cello", "banjo"],
    "color": ["red", "blue", "green", "yellow", "purple", "pink", "gray", "white", "black"],
}

# Invented nouns, so a syllogism can only be answered by logic, not by world knowledge.
NONSENSE_NOUNS = ["blicket", "wug", "dax", "zorp", "fep", "toma", "glim", "vosk", "pimble", "narf"]
ADJECTIVES = ["blue", "round", "quiet", "tall", "warm", "shiny", "soft", "fast", "heavy", "striped"]

# topic -> (a sentence about it, why it matters, related words)
TOPICS = {
    "the ocean": (
        "The ocean covers most of the surface of the Earth.",
        "The ocean matters because it produces much of the oxygen we breathe and feeds billions of people.",
        ["waves", "salt", "tide", "coral", "fish"],
    ),
    "trees": (
        "Trees take in carbon dioxide and release oxygen through their leaves.",
        "Trees matter because they clean the air, cool cities and give homes to animals.",
        ["leaves", "roots", "bark", "branches", "forest"],
    ),
    "the moon": (
        "The moon circles the Earth about once a month.",
        "The moon matters because its pull creates the tides of the oceans.",
        ["crater", "orbit", "tide", "night", "phase"],
    ),
    "bees": (
        "Bees carry pollen from flower to flower while they collect nectar.",
        "Bees matter because many fruits and vegetables need them for pollination.",
        ["honey", "hive", "pollen", "flower", "wax"],
    ),
    "rain": (
        "Rain falls when tiny water droplets in clouds join and become heavy.",
        "Rain matters because plants, animals and people all need fresh water.",
        ["clouds", "puddle", "umbrella", "storm", "drops"],
    ),
    "libraries": (
        "Libraries lend books, music and films to anyone with a card.",
        "Libraries matter because they give everyone free access to knowledge.",
        ["books", "shelves", "quiet", "reading", "librarian"],
    ),
    "bicycles": (
        "A bicycle turns the push of your legs into forward motion through a chain.",
        "Bicycles matter because they are a cheap, clean and healthy way to travel.",
        ["pedals", "wheels", "helmet", "chain", "ride"],
    ),
    "volcanoes": (
        "A volcano erupts when melted rock from deep underground reaches the surface.",
        "Volcanoes matter because their ash makes soil rich and they build new land.",
        ["lava", "ash", "crater", "magma", "eruption"],
    ),
    "friendship": (
        "Friendship grows when people share time, trust and kindness.",
        "Friendship matters because good friends support us through hard times.",
        ["trust", "kindness", "loyalty", "laughter", "support"],
    ),
    "the sun": (
        "The sun is a star that gives the Earth light and heat.",
        "The sun matters because almost all life on Earth depends on its energy.",
        ["light", "heat", "star", "sunrise", "energy"],
    ),
    "music": (
        "Music combines rhythm, melody and harmony to express feelings.",
        "Music matters because it brings people together and lifts their mood.",
        ["rhythm", "melody", "song", "concert", "beat"],
    ),
    "cooking": (
        "Cooking uses heat to change the taste and texture of food.",
        "Cooking matters because it makes food safe, healthy and enjoyable.",
        ["recipe", "oven", "spices", "kitchen", "flavor"],
    ),
    "mountains": (
        "Mountains rise over millions of years as the plates of the Earth push together.",
        "Mountains matter because they store fresh water as snow and ice.",
        ["peak", "snow", "climb", "valley", "summit"],
    ),
    "recycling": (
        "Recycling turns used paper, glass and plastic into new products.",
        "Recycling matters because it saves resources and reduces waste.",
        ["bins", "plastic", "paper", "reuse", "waste"],
    ),
    "sleep": (
        "During sleep the body repairs itself and the brain sorts memories.",
        "Sleep matters because it keeps the body healthy and the mind sharp.",
        ["dreams", "rest", "bed", "night", "pillow"],
    ),
    "gardens": (
        "A garden needs sunlight, water and good soil to grow well.",
        "Gardens matter because they provide food, beauty and homes for insects.",
        ["soil", "seeds", "flowers", "vegetables", "watering"],
    ),
    "the wind": (
        "Wind is air moving from places of high pressure to places of low pressure.",
        "The wind matters because it spreads seeds and can make clean electricity.",
        ["breeze", "gust", "kite", "turbine", "storm"],
    ),
    "maps": (
        "A map shows places and the distances between them as seen from above.",
        "Maps matter because they help people find their way and plan trips.",
        ["roads", "compass", "scale", "legend", "route"],
    ),
    "honesty": (
        "Honesty means telling the truth even when it is difficult.",
        "Honesty matters because trust between people depends on it.",
        ["truth", "trust", "fairness", "integrity", "sincere"],
    ),
    "the desert": (
        "A desert gets very little rain during the whole year.",
        "The desert matters because it is home to plants and animals found nowhere else.",
        ["sand", "dunes", "cactus", "heat", "oasis"],
    ),
    "snow": (
        "Snow forms when water vapor in cold clouds freezes into ice crystals.",
        "Snow matters because its meltwater fills rivers in spring.",
        ["flakes", "cold", "sled", "winter", "snowman"],
    ),
    "computers": (
        "A computer follows instructions to store and process information.",
        "Computers matter because they help people work, learn and communicate.",
        ["keyboard", "screen", "software", "data", "memory"],
    ),
    "birds": (
        "Birds have feathers, and most of them can fly.",
        "Birds matter because they spread seeds and eat insect pests.",
        ["feathers", "nest", "wings", "eggs", "song"],
    ),
    "exercise": (
        "Regular exercise makes the heart and the muscles stronger.",
        "Exercise matters because it improves both health and mood.",
        ["running", "stretching", "muscles", "sweat", "fitness"],
    ),
}

TITLE_PATTERNS = ["The Story of {}", "All About {}", "A Day with {}", "Notes on {}", "The Secret of {}"]
