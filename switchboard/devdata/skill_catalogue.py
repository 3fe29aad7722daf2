"""The demo catalogue of global skills, and the labelled queries that measure search on it.

`SKILLS`: (name, role or None, one-line summary, markdown content), seeded as global skills
(switchboard/devdata/seed.py). `LABELLED_QUERIES`: (query, the name of the skill a person asking it
wants), written as a marketer or an agent would ask, mostly without the skill's own words;
tests/integration/test_skills.py and perf/bench_skills.py report recall@5 on them.
"""

from __future__ import annotations

SKILLS: list[tuple[str, str | None, str, str]] = [
    # Copywriter
    (
        "Brand voice guide",
        "COPYWRITER",
        "Keep every line in the client's voice: plain, warm and direct.",
        """# Brand voice
- Short sentences; one idea each. Active verbs ("we ship", not "shipping is done").
- No jargon, no buzzwords (*synergy*, *leverage*, *best-in-class*).
- Speak to one reader as "you"; the brand is "we".
- Prefer concrete numbers and nouns over adjectives.
- Read the draft aloud: anything you would not say to a customer's face goes.""",
    ),
    (
        "Headline formulas",
        "COPYWRITER",
        "Ten proven patterns for titles of blog posts, emails and landing pages.",
        """# Headline formulas
1. **How to** get [result] without [pain].
2. [Number] ways to [benefit] this [season].
3. The [adjective] guide to [topic].
4. Why [common belief] is wrong, and what to do instead.
5. [Result] in [time]: a step-by-step plan.
6. Question headlines that name the reader's problem.
Write five candidates, keep under 65 characters, put the keyword first.""",
    ),
    (
        "Email subject lines",
        "COPYWRITER",
        "Write inbox subject lines and preheaders that get opened, not flagged as spam.",
        """# Subject lines
- 30 to 50 characters; the first 30 must work alone on a phone.
- Preheader continues the subject, never repeats it.
- No ALL CAPS, no "free!!!", at most one emoji.
- Test two variants on 10% of the list; send the winner after 4 hours.
- Personalise with the first name only when the data is clean.""",
    ),
    (
        "Product description copy",
        "COPYWRITER",
        "Turn a product's specs into benefit-led descriptions for a web shop.",
        """# Product descriptions
Lead with the benefit, then the proof:
- **Opening line:** who it is for and what it lets them do.
- **Three bullets:** feature → benefit (e.g. "800-fill down → warm at -10 °C").
- **Details:** materials, sizes, care, in a scannable list.
- Close with a reason to buy now (stock, season, guarantee).
Keep it under 150 words; reuse the customer's words from reviews.""",
    ),
    (
        "Call-to-action writing",
        "COPYWRITER",
        "Button and link wording that tells the reader exactly what happens on click.",
        """# Calls to action
- Start with a verb and name the outcome: "Get my trail map", not "Submit".
- One primary action per screen or email; secondary actions look secondary.
- Remove risk next to the button: "No card needed", "Cancel any time".
- First person often wins ("Start my trial"); test it.""",
    ),
    # SEO specialist
    (
        "Keyword clustering",
        "SEO_SPECIALIST",
        "Group search terms by intent so that each group gets exactly one page.",
        """# Keyword clustering
1. Export terms with volume and difficulty.
2. Label intent: informational, commercial, transactional, navigational.
3. Cluster terms whose top-10 results overlap by 4 or more URLs.
4. Map each cluster to one URL; never two pages for one cluster (cannibalisation).
5. Name the cluster by its highest-volume head term.""",
    ),
    (
        "Technical SEO audit checklist",
        "SEO_SPECIALIST",
        "Find what stops search engines from crawling, indexing and ranking a site.",
        """# Technical audit
- Crawl errors (4xx/5xx), redirect chains, orphan pages.
- Canonical tags, hreflang, noindex on the wrong pages.
- Core Web Vitals: LCP < 2.5 s, INP < 200 ms, CLS < 0.1.
- Structured data validates; XML sitemaps list only indexable 200 URLs.
- robots.txt blocks nothing that should rank.""",
    ),
    (
        "Meta title and description",
        "SEO_SPECIALIST",
        "Write the snippet a results page shows: title tag and meta description.",
        """# Snippets
- Title: primary keyword first, brand last, under 60 characters.
- Description: 140–155 characters, a benefit and a call to action.
- Unique per page; never leave the CMS default.
- Match the query's intent: a "how to" query wants steps, a product query wants price.""",
    ),
    (
        "Internal linking",
        "SEO_SPECIALIST",
        "Connect pages with descriptive anchors so authority flows to the ones that matter.",
        """# Internal links
- Every page is at most three clicks from the home page.
- Hub pages link to every spoke of their topic; spokes link back.
- Anchor text describes the target ("winter tent guide"), never "click here".
- Fix links to redirects; find orphan pages in the crawl and link them.""",
    ),
    (
        "Local search listings",
        "SEO_SPECIALIST",
        "Get a shop found on maps: business profile, citations and reviews.",
        """# Local SEO
- Claim the Google Business Profile; pick the primary category carefully.
- Name, address, phone identical everywhere (citations).
- Ask every happy customer for a review; answer every review within two days.
- Post opening-hour changes and events on the profile.""",
    ),
    # Social media manager
    (
        "Social posting cadence",
        "SOCIAL_MEDIA_MANAGER",
        "How often to publish on each network, and at what hours.",
        """# Cadence
| network | posts | best hours (local) |
| --- | --- | --- |
| Instagram | 4–5 a week | 11:00–13:00, 19:00 |
| LinkedIn | 3 a week | Tue–Thu 08:00–10:00 |
| TikTok | daily | 18:00–22:00 |
Consistency beats volume: a steady schedule the team can keep.""",
    ),
    (
        "Community replies",
        "SOCIAL_MEDIA_MANAGER",
        "Answer comments and direct messages, including angry ones, in the brand's tone.",
        """# Replying
- Answer within 2 hours in business hours.
- Thank, acknowledge, act: name the problem and the next step.
- Move personal data (orders, addresses) to DMs.
- Never argue in public; escalate threats or legal claims to a person at once.""",
    ),
    (
        "Short-form video scripts",
        "SOCIAL_MEDIA_MANAGER",
        "Script vertical videos for Reels and TikTok: a hook in the first seconds.",
        """# Vertical video
- **0–2 s hook:** a question, a bold claim or a surprising visual.
- **Body:** one idea, shown not told; captions on screen (most watch muted).
- **End:** a loop back to the start or one clear call to action.
- 15–30 seconds; trending audio only when it fits the brand.""",
    ),
    (
        "Hashtag research",
        "SOCIAL_MEDIA_MANAGER",
        "Pick tags that reach the right audience instead of the biggest one.",
        """# Tags
- Mix sizes: two broad, three niche (10k–200k posts), one branded.
- Check the tag's top posts: are they your audience?
- Avoid banned or spammy tags; rotate sets between posts.""",
    ),
    (
        "Influencer outreach",
        "SOCIAL_MEDIA_MANAGER",
        "Find creators who fit the brand and brief them for a paid collaboration.",
        """# Creators
- Engagement rate over follower count; check comments are real.
- Audience fit: location, age, interests match the buyer persona.
- Brief: goal, key message, must-haves, no-gos, disclosure (#ad), deadlines.
- Pay on delivery of the agreed posts; ask for usage rights.""",
    ),
    # Paid-ads manager
    (
        "Ad budget pacing",
        "PAID_ADS_MANAGER",
        "Spread spend evenly over a flight so the money does not run out early.",
        """# Pacing
- Daily target = remaining budget ÷ remaining days.
- Cap any day at 1.5× the average; weekends may be lower for B2B.
- Check pacing daily in the first week, then twice a week.
- Underspending by more than 20%: widen audiences or raise bids.""",
    ),
    (
        "Search ad copy",
        "PAID_ADS_MANAGER",
        "Responsive search ads: headlines and descriptions that match the query.",
        """# Search ads
- 15 headlines of 30 characters: keyword, benefit, offer, proof, call to action.
- Pin only what legal requires.
- 4 descriptions of 90 characters; one mentions price or free shipping.
- Use the landing page's words; keep ad strength "Good" or better.""",
    ),
    (
        "Audience targeting",
        "PAID_ADS_MANAGER",
        "Build prospecting, lookalike and retargeting audiences without overlap.",
        """# Audiences
- Prospecting: interests and 1% lookalikes of buyers.
- Retargeting: site visitors 30 days, cart abandoners 7 days.
- Exclude buyers from prospecting; exclude overlaps between ad sets.
- Minimum audience of 100k for prospecting on social.""",
    ),
    (
        "Creative A/B testing",
        "PAID_ADS_MANAGER",
        "Test ad images and copy one variable at a time, with enough conversions to decide.",
        """# Testing creatives
- One change per test: image, headline or offer.
- Wait for 100 conversions per variant or two weeks, whichever is later.
- Call a winner at 95% confidence; otherwise keep the control.
- Refresh creatives when frequency passes 3 and CTR falls.""",
    ),
    (
        "Conversion tracking setup",
        "PAID_ADS_MANAGER",
        "Make sure purchases and leads are counted once, by pixel and server events.",
        """# Tracking
- Pixel plus server-side (Conversions API) with event deduplication.
- One primary conversion per campaign; the rest observational.
- Test with a real purchase before launch; compare with the shop's orders.
- Consent mode respected: no tags fire before consent.""",
    ),
    # Activity planner
    (
        "Campaign plan template",
        "ACTIVITY_PLANNER",
        "Break a campaign goal into deliverables, owners and due dates.",
        """# Campaign plan
1. Goal as a number and a date ("500 sign-ups by 30 June").
2. Audience and the one message for them.
3. Deliverables: blog post, emails, social posts, ads, report — each with a role.
4. Dates working back from launch; reviews two days before each due date.
5. Budget split per channel and the measure of success.""",
    ),
    (
        "Content calendar",
        "ACTIVITY_PLANNER",
        "Lay out a month of posts and articles around launches and holidays.",
        """# Calendar
- Mark fixed dates first: launches, holidays, events, sales.
- One theme per week; every channel supports it.
- Fill in formats (article, video, email) and owners.
- Leave 20% of slots free for news and reactive posts.""",
    ),
    (
        "Creative brief",
        "ACTIVITY_PLANNER",
        "The one-page brief a writer or designer needs before starting work.",
        """# Brief
- **Objective:** what should change in the reader's mind or behaviour.
- **Audience:** who, what they believe now, what they need to hear.
- **Single-minded message**, and the proof behind it.
- **Mandatories:** logo, legal lines, formats, deadline.""",
    ),
    (
        "Launch checklist",
        "ACTIVITY_PLANNER",
        "Everything to check in the week before a campaign goes live.",
        """# Before launch
- Links, UTM parameters and tracking tested end to end.
- Approvals signed off; legal and brand review done.
- Landing page live, fast and on mobile.
- Support team briefed; a rollback plan if something breaks.""",
    ),
    # Data analyst
    (
        "Cohort analysis",
        "DATA_ANALYST",
        "Measure how customers acquired in the same month keep buying over time.",
        """# Cohorts
- Group customers by first-purchase month.
- For each month after, the share still buying (retention) and revenue per customer.
- Read the triangle diagonally to spot seasonality, vertically for product changes.
- Compare cohorts from different channels before shifting budget.""",
    ),
    (
        "UTM tagging conventions",
        "DATA_ANALYST",
        "Name source, medium and campaign parameters so reports add up.",
        """# UTM
- `utm_source`: the site (google, newsletter, instagram), lower case.
- `utm_medium`: cpc, email, social, referral — from a fixed list.
- `utm_campaign`: yyyy-mm_campaign-slug.
- Never tag internal links; keep one shared sheet of every tagged URL.""",
    ),
    (
        "Marketing attribution",
        "DATA_ANALYST",
        "Credit conversions to channels fairly: last click, position-based or data-driven.",
        """# Attribution
- Last click undervalues discovery channels; first click overvalues them.
- Position-based: 40% first, 40% last, 20% spread over the middle.
- Data-driven when there are 300+ conversions a month.
- Sanity-check with a holdout or geo test before moving money.""",
    ),
    (
        "Weekly performance report",
        "DATA_ANALYST",
        "A one-page summary of spend, results and what to change next week.",
        """# Weekly report
1. Headline: the one number that matters and its change.
2. Spend, conversions, cost per acquisition, return on ad spend by channel.
3. What worked, what did not, and why (with evidence).
4. Three actions for next week, each with an owner.""",
    ),
    (
        "Significance testing",
        "DATA_ANALYST",
        "Decide whether a difference between two variants is real or noise.",
        """# Is it real?
- Fix the sample size before the test (power 80%, the smallest effect worth acting on).
- Two proportions: a chi-squared or z test; report the interval, not just p.
- No peeking: stopping at the first p < 0.05 inflates false winners.
- Many metrics: correct for multiple comparisons.""",
    ),
    # Content researcher
    (
        "Source evaluation",
        "CONTENT_RESEARCHER",
        "Judge whether a source is trustworthy enough to cite.",
        """# Sources
- Authority: who wrote it, what do they know, who paid for it?
- Recency: statistics older than three years need a newer confirmation.
- Independence: two unrelated sources for every claim that matters.
- Link to the original study, never to a blog quoting it.""",
    ),
    (
        "Competitor content audit",
        "CONTENT_RESEARCHER",
        "Map what rival brands publish, what ranks for them and where the gaps are.",
        """# Rivals
- List their top pages by estimated traffic and backlinks.
- Note topics, formats, depth and update dates.
- Gaps: questions customers ask that nobody answers well.
- Never copy; answer better, with first-hand data or experience.""",
    ),
    (
        "Customer interview synthesis",
        "CONTENT_RESEARCHER",
        "Turn interview notes into themes, quotes and messaging insights.",
        """# Interviews
- Tag each note: pain, goal, trigger, objection, words used.
- A theme needs three or more people; count them.
- Keep verbatim quotes; they make the best headlines.
- End with the three insights that should change the messaging.""",
    ),
    (
        "Trend research",
        "CONTENT_RESEARCHER",
        "Spot rising topics in the client's market before competitors write about them.",
        """# Trends
- Search-interest curves over five years: rising, seasonal or a spike?
- Forums, subreddits and review sites for new words customers use.
- Industry reports and conference agendas for what experts expect.
- Write down the evidence and a date; revisit in a quarter.""",
    ),
    # Every role
    (
        "Accessibility basics",
        None,
        "Make content usable for everyone: alt text, contrast, plain language.",
        """# Accessible content
- Alt text says what an image shows and why it is there.
- Text contrast at least 4.5:1; never colour alone to carry meaning.
- Descriptive link text; headings in order.
- Plain language: a reading age of about 12.""",
    ),
    (
        "Legal claims and disclosures",
        None,
        "What marketing may not promise, and which disclaimers every piece needs.",
        """# Claims
- Superlatives ("the best", "No. 1") need independent proof.
- Prices include taxes and fees; offers state their end date.
- Paid partnerships are labelled (#ad, "sponsored").
- Health, finance and environmental claims go to legal review before publishing.""",
    ),
]

LABELLED_QUERIES: list[tuple[str, str]] = [
    ("keep the tone consistent with how the client talks", "Brand voice guide"),
    ("catchy titles for a blog article", "Headline formulas"),
    ("get more people to open our newsletter", "Email subject lines"),
    ("describe a jacket for the online store", "Product description copy"),
    ("what should the signup button say", "Call-to-action writing"),
    ("group search terms by what people want", "Keyword clustering"),
    ("site pages are not showing up in google", "Technical SEO audit checklist"),
    ("snippet text shown in search results", "Meta title and description"),
    ("anchor text for links between our own pages", "Internal linking"),
    ("help a shop appear on google maps", "Local search listings"),
    ("how many instagram posts per week", "Social posting cadence"),
    ("answering an angry comment under our post", "Community replies"),
    ("script for a tiktok reel", "Short-form video scripts"),
    ("which hashtags to put on a post", "Hashtag research"),
    ("work with creators to promote the product", "Influencer outreach"),
    ("budget ran out halfway through the month", "Ad budget pacing"),
    ("google ads headlines and descriptions", "Search ad copy"),
    ("retarget people who abandoned their cart", "Audience targeting"),
    ("compare two ad images to see which performs", "Creative A/B testing"),
    ("purchases are counted twice by the pixel", "Conversion tracking setup"),
    ("split a campaign goal into tasks and deadlines", "Campaign plan template"),
    ("schedule a month of posts around the holidays", "Content calendar"),
    ("one-page brief for the designer", "Creative brief"),
    ("what to check before the campaign goes live", "Launch checklist"),
    ("retention of customers by month of first order", "Cohort analysis"),
    ("naming the parameters on tracked links", "UTM tagging conventions"),
    ("which channel gets credit for a sale", "Marketing attribution"),
    ("summary of last week's spend and results", "Weekly performance report"),
    ("is the difference between variant A and B real", "Significance testing"),
    ("can we trust this statistic for an article", "Source evaluation"),
    ("what content do rival brands publish", "Competitor content audit"),
    ("themes from customer interview notes", "Customer interview synthesis"),
    ("topics gaining interest in our market", "Trend research"),
    ("alt text and colour contrast for images", "Accessibility basics"),
    ("can we call our product the best in the ad", "Legal claims and disclosures"),
]
