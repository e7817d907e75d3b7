"""The book: charts, rendering, the chapters' notebooks, the report run and its preview. May
import every folder below it."""
